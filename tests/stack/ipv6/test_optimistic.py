"""Optimistic DAD (RFC 4429): usable at once, silent in ND until DAD ends, withdrawn when DAD fails."""

from __future__ import annotations

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import Ether

from pytcp_green.stack.datagram.udp import UdpSocket
from pytcp_green.stack.interface import Interface, LinkKind
from pytcp_green.stack.ipv6.ip import AddrState
from pytcp_green.stack.sockbase import AF_INET6
from pytcp_green.stack.stack import SOCK_DGRAM, Stack

from ..helpers import PEER_MAC, STACK_MAC, sent
from .helpers import PEER_IP6, PEER_LL, STACK_IP6, STACK_LL, packed, run_until, to_stack

OTHER_IP6 = "fd00:77::3"  # another neighbour, never resolved before


def optimistic_stack(*, slaac: bool = False, static: bool = True, sysctl: dict[str, int] | None = None
                     ) -> tuple[Stack, Interface]:
    stack = Stack(seed=1, sysctl={"net.ipv6.conf.default.optimistic_dad": 1, **(sysctl or {})})
    iface = stack.add_interface("eth0", LinkKind.ETHERNET, mac=bytes.fromhex(STACK_MAC.replace(":", "")))
    stack.enable_ip6(iface, slaac=slaac)
    if static:
        stack.add_ip6(iface, f"{STACK_IP6}/64", optimistic=True)
    return stack, iface


def udp6(stack: Stack) -> UdpSocket:
    sock = stack.socket(AF_INET6, SOCK_DGRAM)
    assert isinstance(sock, UdpSocket)
    return sock


def state(stack: Stack, addr: str) -> AddrState:
    return stack.ip6.local[packed(addr)].state


def ns_from(src: str, target: str = STACK_IP6) -> bytes:
    pkt = IPv6(src=src, dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=target)
    if src != "::":
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC)
    return to_stack(pkt, "33:33:ff:00:00:02")


def test_autoconfigured_and_flagged_addresses_are_usable_at_once_and_probed_without_delay() -> None:
    stack, iface = optimistic_stack()
    assert state(stack, STACK_LL) is AddrState.OPTIMISTIC and state(stack, STACK_IP6) is AddrState.OPTIMISTIC
    assert stack.is_local(packed(STACK_LL)) and stack.is_local(packed(STACK_IP6))
    assert stack.ip6.tentative(iface) == []  # nothing for a runtime to wait for
    run_until(stack, 0.0)
    probes = [f for f in sent(iface) if f.haslayer(ICMPv6ND_NS)]
    # RFC 4429 §3 (as Linux): the first probe goes out at once, still from :: and bare.
    assert {f[ICMPv6ND_NS].tgt for f in probes} == {STACK_LL, STACK_IP6}
    assert all(f[IPv6].src == "::" and not f.haslayer(ICMPv6NDOptSrcLLAddr) for f in probes)
    run_until(stack, 5.0)
    assert state(stack, STACK_LL) is AddrState.PREFERRED and state(stack, STACK_IP6) is AddrState.PREFERRED
    assert stack.stats["ip6.dad.ok"] == 2


def test_static_addresses_are_optimistic_only_when_asked_and_off_by_default() -> None:
    stack, iface = optimistic_stack(static=False)
    stack.add_ip6(iface, f"{STACK_IP6}/64")  # manually entered: RFC 4429 §3, classic DAD
    assert state(stack, STACK_IP6) is AddrState.TENTATIVE and not stack.is_local(packed(STACK_IP6))
    plain = Stack(seed=1)  # Linux's default: optimistic_dad 0
    eth = plain.add_interface("eth0", LinkKind.ETHERNET, mac=bytes.fromhex(STACK_MAC.replace(":", "")))
    plain.enable_ip6(eth, slaac=False)
    assert state(plain, STACK_LL) is AddrState.TENTATIVE


def test_echo_to_an_optimistic_address_is_answered() -> None:
    stack, iface = optimistic_stack()
    stack.receive(iface, ns_from(PEER_IP6), 0.1)
    iface.tx.clear()
    ping = IPv6(src=PEER_IP6, dst=STACK_IP6) / ICMPv6EchoRequest(id=7, seq=1, data=b"hi")
    stack.receive(iface, to_stack(ping), 0.2)
    (reply,) = sent(iface)
    assert reply[IPv6].src == STACK_IP6 and reply[ICMPv6EchoReply].data == b"hi"


def test_ns_from_a_unicast_source_gets_an_na_without_override_until_dad_ends() -> None:
    stack, iface = optimistic_stack()
    run_until(stack, 0.0)
    iface.tx.clear()
    stack.receive(iface, ns_from(PEER_IP6), 0.1)
    (na,) = sent(iface)
    # RFC 4429 §2.2: answered (S=1), but O=0 so that a cache holding the rightful owner keeps it.
    assert (na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O, na[ICMPv6ND_NA].tgt) == (1, 0, STACK_IP6)
    assert na[ICMPv6NDOptDstLLAddr].lladdr == STACK_MAC
    run_until(stack, 5.0)
    iface.tx.clear()
    stack.receive(iface, ns_from(PEER_IP6), 6.0)
    (na,) = sent(iface)
    assert (na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (1, 1)  # past DAD: an ordinary answer


@pytest.mark.parametrize("how", ["ns", "na"])
def test_dad_failure_withdraws_the_optimistic_address(how: str) -> None:
    stack, iface = optimistic_stack()
    run_until(stack, 0.0)
    iface.tx.clear()
    if how == "ns":
        frame = ns_from("::")  # RFC 4429 §2.2: someone else probes it: never answered, a duplicate
    else:
        na = IPv6(src=STACK_IP6, dst="ff02::1", hlim=255) / ICMPv6ND_NA(S=0, O=1, tgt=STACK_IP6) / \
            ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC)
        frame = to_stack(na, "33:33:00:00:00:01")
    stack.receive(iface, frame, 0.3)
    assert not [f for f in sent(iface) if f.haslayer(ICMPv6ND_NA)]
    assert stack.stats["ip6.dad.optimistic_withdrawn"] == 1
    assert not stack.is_local(packed(STACK_IP6))
    assert [a.state for a in stack.ip6.ifs[iface].addrs if a.ip == packed(STACK_IP6)] == [AddrState.DUPLICATE]
    run_until(stack, 5.0)
    assert not stack.is_local(packed(STACK_IP6)) and state(stack, STACK_LL) is AddrState.PREFERRED


def test_no_ns_from_an_optimistic_address_the_packet_waits_for_dad() -> None:
    stack, iface = optimistic_stack()
    run_until(stack, 0.0)
    iface.tx.clear()
    sock = udp6(stack)
    sock.sendto(b"early", (OTHER_IP6, 9999), 0.1)
    # Only optimistic addresses: no resolution (RFC 4429 §2.2), no NS from :: either, no router known.
    assert sent(iface) == [] and stack.stats["nd.optimistic_held"] == 1
    frames: list[Ether] = []
    now = 0.1
    while (deadline := stack.next_deadline()) is not None and deadline <= 5.0 and not frames:
        now = deadline
        stack.poll(now)
        frames = [f for f in sent(iface) if f.haslayer(ICMPv6ND_NS) and f[ICMPv6ND_NS].tgt == OTHER_IP6]
    (ns,) = frames
    assert state(stack, STACK_IP6) is AddrState.PREFERRED  # resolution began once its DAD ended
    assert ns[IPv6].src in (STACK_IP6, STACK_LL) and ns[ICMPv6NDOptSrcLLAddr].lladdr == STACK_MAC
    na = IPv6(src=OTHER_IP6, dst=ns[IPv6].src, hlim=255) / ICMPv6ND_NA(S=1, O=1, tgt=OTHER_IP6) / \
        ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC)
    stack.receive(iface, to_stack(na), now + 0.01)
    (dgram,) = sent(iface)
    assert dgram[IPv6].src == STACK_IP6 and bytes(dgram[UDP].payload) == b"early"


def test_a_held_packet_is_dropped_when_its_source_fails_dad() -> None:
    stack, iface = optimistic_stack()
    run_until(stack, 0.0)
    sock = udp6(stack)
    sock.bind((STACK_IP6, 0))
    sock.sendto(b"early", (OTHER_IP6, 9999), 0.1)
    stack.receive(iface, ns_from("::"), 0.2)
    run_until(stack, 5.0)
    frames = sent(iface)
    assert not [f for f in frames if f.haslayer(UDP)]
    assert not [f for f in frames if f.haslayer(ICMPv6ND_NS) and f[ICMPv6ND_NS].tgt == OTHER_IP6]
    assert stack.stats["nd.drop.optimistic_source_gone"] == 1


def test_a_confirmed_link_local_sources_the_ns_for_an_optimistic_packet() -> None:
    stack = Stack(seed=1)
    iface = stack.add_interface("eth0", LinkKind.ETHERNET, mac=bytes.fromhex(STACK_MAC.replace(":", "")))
    stack.enable_ip6(iface, slaac=False)
    run_until(stack, 5.0)
    stack.add_ip6(iface, f"{STACK_IP6}/64", 5.0, optimistic=True)
    iface.tx.clear()
    sock = udp6(stack)
    sock.bind((STACK_IP6, 0))
    sock.sendto(b"x", (OTHER_IP6, 9999), 5.0)
    (ns,) = [f for f in sent(iface) if f.haslayer(ICMPv6ND_NS) and f[ICMPv6ND_NS].tgt == OTHER_IP6]
    assert ns[IPv6].src == STACK_LL  # the prompting packet's source is optimistic: not that one


def test_with_a_known_router_the_packet_goes_through_it() -> None:
    stack, iface = optimistic_stack(slaac=True)
    run_until(stack, 0.0)
    ra = IPv6(src=PEER_LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=1800) / \
        ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC)
    stack.receive(iface, to_stack(ra, "33:33:00:00:00:01"), 0.1)
    iface.tx.clear()
    sock = udp6(stack)
    sock.sendto(b"via router", (OTHER_IP6, 9999), 0.2)
    (dgram,) = sent(iface)  # RFC 4429 §2.3: to the default router, no NS
    assert dgram[Ether].dst == PEER_MAC and dgram[IPv6].dst == OTHER_IP6
    assert stack.stats["nd.tx.optimistic_via_router"] == 1


def test_router_solicitation_from_unspecified_without_sllao_while_link_local_is_optimistic() -> None:
    stack, iface = optimistic_stack(slaac=True, static=False)
    rs: list[Ether] = []
    while (deadline := stack.next_deadline()) is not None and deadline <= 1.0:
        stack.poll(deadline)
        rs += [f for f in sent(iface) if f.haslayer(ICMPv6ND_RS)]
    assert state(stack, STACK_LL) is AddrState.OPTIMISTIC or rs  # solicited before DAD ended
    (first, *_) = rs
    assert first[IPv6].src == "::" and not first.haslayer(ICMPv6NDOptSrcLLAddr)  # RFC 4429 §2.4


def test_slaac_address_is_optimistic_and_avoided_as_a_source_like_a_deprecated_one() -> None:
    stack, iface = optimistic_stack(slaac=True, static=False)
    run_until(stack, 5.0)
    stack.add_ip6(iface, "fd00:98::5/64", 5.0)  # classic DAD: preferred after it
    run_until(stack, 10.0)
    ra = IPv6(src=PEER_LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=1800) / \
        ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC) / ICMPv6NDOptPrefixInfo(
            prefix="fd00:99::", prefixlen=64, L=1, A=1, validlifetime=7200, preferredlifetime=3600)
    stack.receive(iface, to_stack(ra, "33:33:00:00:00:01"), 10.0)
    slaac = packed("fd00:99::ff:fe00:2")
    assert stack.ip6.local[slaac].state is AddrState.OPTIMISTIC and stack.is_local(slaac)
    # RFC 6724 rule 3 with RFC 4429 §3: the preferred one wins although the SLAAC one matches longer.
    assert stack.select_source(packed("fd00:99::ff:fe00:1")) == packed("fd00:98::5")
    stack.sysctl["net.ipv6.conf.default.use_optimistic"] = 1  # Linux's knob: no longer avoided
    assert stack.select_source(packed("fd00:99::ff:fe00:1")) == slaac
    run_until(stack, 15.0)
    assert stack.ip6.local[slaac].state is AddrState.PREFERRED

