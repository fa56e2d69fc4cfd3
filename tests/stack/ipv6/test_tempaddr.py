"""RFC 8981 temporary addresses on a virtual clock: random identifiers, lifetimes, regeneration, DAD,
and RFC 6724 rule 7 in source selection."""

from __future__ import annotations

import ipaddress

from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6NDOptPrefixInfo, ICMPv6NDOptSrcLLAddr, IPv6

from pytcp_green.stack.interface import Interface
from pytcp_green.stack.ipv6.addrconf import reserved_iid
from pytcp_green.stack.ipv6.ip import Addr6, AddrState
from pytcp_green.stack.stack import Stack

from ..helpers import PEER_MAC, sent
from .helpers import PEER_LL, make_stack6, packed, run_until, to_stack

PREFIX = "fd00:99::"
PUBLIC = packed("fd00:99::ff:fe00:2")  # EUI-64 of the stack's MAC


def ra(valid: int = 86400, preferred: int = 14400) -> bytes:
    pkt = IPv6(src=PEER_LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=1800) / ICMPv6NDOptSrcLLAddr(
        lladdr=PEER_MAC) / ICMPv6NDOptPrefixInfo(prefix=PREFIX, prefixlen=64, L=1, A=1, validlifetime=valid,
                                                 preferredlifetime=preferred)
    return to_stack(pkt, "33:33:00:00:00:01")


def stack_with(use_tempaddr: int, seed: int = 1, **sysctl: float) -> tuple[Stack, Interface]:
    stack, iface = make_stack6(seed, slaac=True, static=None)
    stack.sysctl["net.ipv6.conf.default.use_tempaddr"] = use_tempaddr
    for name, value in sysctl.items():
        stack.sysctl[f"net.ipv6.conf.default.{name}"] = value
    return stack, iface


def temporaries(stack: Stack, iface: Interface) -> list[Addr6]:
    return [a for a in stack.ip6.ifs[iface].addrs if a.origin == "temporary"]


def test_off_by_default() -> None:
    stack, iface = make_stack6(slaac=True, static=None)
    stack.receive(iface, ra(), 10.0)
    run_until(stack, 15.0)
    assert temporaries(stack, iface) == [] and stack.ip6.local[PUBLIC].state is AddrState.PREFERRED


def test_random_identifier_dad_and_lifetimes_capped() -> None:
    stack, iface = stack_with(1, temp_valid_lft=3000.0, temp_prefered_lft=1000.0)
    stack.receive(iface, ra(valid=86400, preferred=14400), 10.0)
    (temp,) = temporaries(stack, iface)
    assert temp.ip[:8] == PUBLIC[:8] and temp.ip != PUBLIC and temp.prefixlen == 64
    assert not reserved_iid(int.from_bytes(temp.ip[8:], "big"))
    assert temp.tentative  # DAD first (optimistic_dad is off here)
    run_until(stack, 15.0)
    assert temp.state is AddrState.PREFERRED
    dad = [f for f in sent(iface) if f.haslayer(ICMPv6ND_NS) and f[IPv6].src == "::"]
    assert {f[ICMPv6ND_NS].tgt for f in dad} >= {str(ipaddress.IPv6Address(temp.ip))}
    # §3.4: valid = min(prefix, TEMP_VALID_LIFETIME); preferred = min(prefix, TEMP_PREFERRED - DESYNC)
    assert temp.valid_until == 10.0 + 3000.0
    assert temp.preferred_until is not None
    desync = 10.0 + 1000.0 - temp.preferred_until
    assert 0.0 <= desync <= 0.4 * 1000.0
    # A second stack (another seed) draws another identifier.
    other, other_iface = stack_with(1, seed=2)
    other.receive(other_iface, ra(), 10.0)
    assert temporaries(other, other_iface)[0].ip != temp.ip


def test_prefix_lifetimes_bound_the_temporary_ones_and_an_ra_never_extends_past_the_caps() -> None:
    stack, iface = stack_with(1, temp_valid_lft=3000.0, temp_prefered_lft=1000.0)
    stack.receive(iface, ra(valid=500, preferred=300), 10.0)
    run_until(stack, 15.0)
    (temp,) = temporaries(stack, iface)
    assert (temp.valid_until, temp.preferred_until) == (510.0, 310.0)
    stack.receive(iface, ra(valid=86400, preferred=86400), 200.0)
    (temp,) = [t for t in temporaries(stack, iface) if t.valid_until == 10.0 + 3000.0]
    assert temp.preferred_until is not None and temp.preferred_until <= 10.0 + 1000.0


def test_no_temporary_address_when_its_preferred_lifetime_would_not_exceed_regen_advance() -> None:
    stack, iface = stack_with(1)
    stack.receive(iface, ra(valid=600, preferred=4), 10.0)  # REGEN_ADVANCE is 2 + 3 * 1 * 1 = 5 s
    assert temporaries(stack, iface) == [] and stack.stats["ip6.temporary.too_short"] == 1


def test_regenerated_before_deprecation_old_ones_deprecate_then_expire() -> None:
    # With only the first RA (long prefix lifetimes), temporary addresses follow one another:
    # at every instant one is preferred, none outlives TEMP_VALID_LIFETIME, and old ones go away.
    stack, iface = stack_with(1, temp_valid_lft=300.0, temp_prefered_lft=100.0)
    stack.receive(iface, ra(), 10.0)
    seen: dict[bytes, float] = {}
    t = 15.0
    while t < 2000.0:
        run_until(stack, t)
        temps = temporaries(stack, iface)
        for a in temps:
            seen.setdefault(a.ip, t)
            assert t - seen[a.ip] <= 300.0 + 10.0  # sampled every 10 s
        assert any(a.state is AddrState.PREFERRED for a in temps), t
        assert len(temps) <= 300 // 60 + 2  # deprecated ones are removed at their valid lifetime
        t += 10.0
    assert stack.stats["ip6.temporary.regenerated"] >= 2000 // 100 - 2
    assert len(set(seen)) == stack.stats["ip6.temporary.address"]  # a new identifier each time
    assert stack.ip6.local[PUBLIC].state is AddrState.PREFERRED


def test_duplicate_temporary_address_is_replaced_by_a_new_identifier() -> None:
    stack, iface = stack_with(1)
    stack.receive(iface, ra(), 10.0)
    (first,) = temporaries(stack, iface)
    na = IPv6(src="fe80::3", dst="ff02::1", hlim=255) / ICMPv6ND_NA(tgt=str(ipaddress.IPv6Address(first.ip)), R=0,
                                                                    S=0, O=1)
    stack.receive(iface, to_stack(na, "33:33:00:00:00:01"), 10.1)
    assert first.state is AddrState.DUPLICATE and first.ip not in stack.ip6.local
    (second,) = [a for a in temporaries(stack, iface) if a.state is not AddrState.DUPLICATE]
    assert second.ip != first.ip and second.dad_counter == 1 and stack.stats["ip6.temporary.retry"] == 1
    run_until(stack, 20.0)
    assert second.state is AddrState.PREFERRED


def test_source_selection_prefers_temporary_only_at_2() -> None:
    stack, iface = stack_with(1)
    stack.receive(iface, ra(), 10.0)
    run_until(stack, 15.0)
    (temp,) = temporaries(stack, iface)
    dst = packed("fd00:99::1")
    assert stack.select_source(dst) == PUBLIC  # 1: made, public ones preferred (as Linux)
    stack.sysctl["net.ipv6.conf.default.use_tempaddr"] = 2
    assert stack.select_source(dst) == temp.ip  # 2: RFC 6724 rule 7
    temp.state = AddrState.DEPRECATED
    assert stack.select_source(dst) == PUBLIC  # rule 3 comes before rule 7


def test_turning_it_off_stops_regeneration() -> None:
    stack, iface = stack_with(2, temp_valid_lft=300.0, temp_prefered_lft=100.0)
    stack.receive(iface, ra(), 10.0)
    run_until(stack, 15.0)
    stack.sysctl["net.ipv6.conf.default.use_tempaddr"] = 0
    run_until(stack, 400.0)
    assert temporaries(stack, iface) == []  # the one made expired and none followed
