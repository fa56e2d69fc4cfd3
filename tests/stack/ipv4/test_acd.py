"""RFC 5227 address conflict detection in the core: probe, announce, defend, give up; frames read by scapy."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from scapy.layers.l2 import ARP, Ether

from pytcp_green.stack.interface import Interface
from pytcp_green.stack.stack import Stack

from ..helpers import PEER_MAC, STACK_IP, STACK_MAC, make_stack, sent

FAST = {
    "net.ipv4.acd.probe_wait": 0.5,
    "net.ipv4.acd.probe_min": 0.2,
    "net.ipv4.acd.probe_max": 0.4,
    "net.ipv4.acd.announce_wait": 1.0,
    "net.ipv4.acd.announce_interval": 0.5,
    "net.ipv4.acd.defend_interval": 10.0,
}
CANDIDATE = "198.18.0.9"


def run_until_idle(stack: Stack, iface: Interface, start: float, limit: float) -> list[tuple[float, Ether]]:
    """Fire timers in order until none is left (or ``limit``); the frames sent, with the time they left."""
    out: list[tuple[float, Ether]] = []
    now = start
    while (deadline := stack.next_deadline()) is not None and deadline <= limit:
        now = deadline
        stack.poll(now)
        out.extend((now, f) for f in sent(iface))
    return out


def start_probe(stack: Stack, iface: Interface) -> list[tuple[bool, float]]:
    results: list[tuple[bool, float]] = []
    stack.ip4.probe_address(iface, ipaddress.IPv4Interface(f"{CANDIDATE}/24"), 0.0,
                            lambda ok, now: results.append((ok, now)))
    return results


def test_probe_then_announce_when_nobody_answers() -> None:
    stack, iface = make_stack(address=False, **FAST)
    results = start_probe(stack, iface)
    frames = run_until_idle(stack, iface, 0.0, 100.0)
    probes = [(t, f) for t, f in frames if f[ARP].psrc == "0.0.0.0"]
    announces = [(t, f) for t, f in frames if f[ARP].psrc == CANDIDATE]
    assert len(probes) == 3 and len(announces) == 2 and len(frames) == 5
    for _, f in probes:
        assert f[ARP].op == 1 and f[ARP].pdst == CANDIDATE and f[ARP].hwdst == "00:00:00:00:00:00"
        assert f.dst == "ff:ff:ff:ff:ff:ff" and f[ARP].hwsrc == STACK_MAC
    for _, f in announces:
        assert f[ARP].op == 1 and f[ARP].pdst == CANDIDATE
    assert probes[0][0] <= 0.5
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(probes)]
    assert all(0.2 <= g <= 0.4 for g in gaps)
    assert announces[0][0] - probes[-1][0] == pytest.approx(1.0)
    assert announces[1][0] - announces[0][0] == pytest.approx(0.5)
    assert results == [(True, announces[0][0])]
    assert bytes(map(int, CANDIDATE.split("."))) in stack.ip4.local


def conflicting(psrc: str, op: int = 2, pdst: str = CANDIDATE, hwsrc: str = PEER_MAC) -> bytes:
    return bytes(Ether(src=hwsrc, dst="ff:ff:ff:ff:ff:ff") / ARP(op=op, hwsrc=hwsrc, psrc=psrc, pdst=pdst))


def test_reply_from_the_owner_during_probing_is_a_conflict() -> None:
    stack, iface = make_stack(address=False, **FAST)
    results = start_probe(stack, iface)
    stack.poll(stack.next_deadline() or 0.0)
    sent(iface)
    stack.receive(iface, conflicting(CANDIDATE), 0.6)
    assert results == [(False, 0.6)]
    assert run_until_idle(stack, iface, 0.6, 100.0) == []  # no more probes, no announcement
    assert not any(a.ip == ipaddress.IPv4Address(CANDIDATE) for a in iface.ip4)
    assert stack.stats["arp.acd.conflict_probing"] == 1 and stack.stats["ip4.address_conflict"] == 1


def test_someone_elses_probe_for_the_same_address_is_a_conflict() -> None:
    stack, iface = make_stack(address=False, **FAST)
    results = start_probe(stack, iface)
    stack.receive(iface, conflicting("0.0.0.0", op=1), 0.1)
    assert results == [(False, 0.1)]


def test_dynamic_address_is_defended_once_then_given_up() -> None:
    stack, iface = make_stack(address=False, **FAST)
    stack.ip4.add_address(iface, ipaddress.IPv4Interface(f"{STACK_IP}/24"), dynamic=True)  # as DHCP does
    lost: list[str] = []
    stack.ip4.on_address_lost.append(lambda _i, a: lost.append(str(a)))
    stack.receive(iface, conflicting(STACK_IP, op=1, pdst=STACK_IP), 1.0)
    (defence,) = sent(iface)
    assert defence[ARP].op == 1 and defence[ARP].psrc == defence[ARP].pdst == STACK_IP
    assert defence.dst == "ff:ff:ff:ff:ff:ff" and defence[ARP].hwsrc == STACK_MAC
    assert STACK_IP in [str(a.ip) for a in iface.ip4]
    # The conflicting sender is not learned as the owner of our address.
    assert bytes(map(int, STACK_IP.split("."))) not in iface.arp.entries  # type: ignore[union-attr]
    stack.receive(iface, conflicting(STACK_IP, op=1, pdst=STACK_IP), 12.0)  # after DEFEND_INTERVAL: defend again
    assert len(sent(iface)) == 1 and stack.stats["arp.acd.defend"] == 2
    stack.receive(iface, conflicting(STACK_IP, op=2, pdst=STACK_IP), 13.0)  # within it: give up
    assert sent(iface) == []
    assert lost == [f"{STACK_IP}/24"] and not iface.ip4
    assert stack.stats["arp.acd.give_up"] == 1


def test_static_address_is_defended_and_never_given_up() -> None:
    stack, iface = make_stack(**FAST)  # set by hand
    lost: list[str] = []
    stack.ip4.on_address_lost.append(lambda _i, a: lost.append(str(a)))
    stack.receive(iface, conflicting(STACK_IP, op=1, pdst=STACK_IP), 1.0)
    assert len(sent(iface)) == 1  # defended
    stack.receive(iface, conflicting(STACK_IP, op=2, pdst=STACK_IP), 2.0)  # again within DEFEND_INTERVAL
    assert sent(iface) == [] and lost == [] and STACK_IP in [str(a.ip) for a in iface.ip4]
    assert stack.stats["arp.acd.conflict_kept_static"] == 1 and stack.stats["arp.acd.give_up"] == 0
    stack.receive(iface, conflicting(STACK_IP, op=2, pdst=STACK_IP), 12.0)  # past the interval: defended again
    (defence,) = sent(iface)
    assert defence[ARP].psrc == defence[ARP].pdst == STACK_IP and defence[ARP].hwsrc == STACK_MAC
    assert stack.stats["arp.acd.defend"] == 2 and STACK_IP in [str(a.ip) for a in iface.ip4]


def test_adding_an_address_with_a_time_sends_gratuitous_arp() -> None:
    stack, iface = make_stack(address=False, **FAST)
    stack.add_ip4(iface, "198.18.0.7/24", now=5.0)
    frames = [f for _, f in run_until_idle(stack, iface, 5.0, 100.0)] + sent(iface)
    assert len(frames) == 2
    assert all(f[ARP].psrc == f[ARP].pdst == "198.18.0.7" and f[ARP].op == 1 for f in frames)


def test_probe_from_another_host_for_our_address_is_answered() -> None:
    stack, iface = make_stack(**FAST)
    stack.receive(iface, conflicting("0.0.0.0", op=1, pdst=STACK_IP), 1.0)
    (reply,) = sent(iface)
    assert reply[ARP].op == 2 and reply.dst == PEER_MAC and reply[ARP].psrc == STACK_IP
    assert stack.stats["arp.acd.defend"] == 0 and iface.ip4
