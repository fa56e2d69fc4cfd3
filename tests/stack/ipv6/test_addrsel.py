"""RFC 6724 §6 destination ordering (pytcp_green.stack.ipv6.addrsel) on the examples of RFC 6724 §10.2.

Each case gives the stack the candidate source addresses of the example (plus routes so every
destination has a way out), hands the destinations in the order the RFC expects them to be
reordered from, and checks the result.  The stack's link-local is fe80::ff:fe00:2 where the
RFC writes fe80::1 or fe80::2; ::1 and 127.0.0.1 are always there and never chosen as sources
for these destinations.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from pytcp_green.stack.ipv6.addrsel import order_destinations, policy, scope
from pytcp_green.stack.ipv6.ip import AddrState
from pytcp_green.stack.stack import Stack

from .helpers import make_stack6


def _packed(text: str) -> bytes:
    ip = ipaddress.ip_address(text)
    return ip.packed if ip.version == 6 else ipaddress.IPv6Address("::ffff:" + text).packed


def _stack(sources6: Sequence[str], sources4: Sequence[str] = (), *, gateway4: str | None = None) -> Stack:
    stack, iface = make_stack6(static=None)
    for text in sources6:
        stack.ip6.add_address(iface, ipaddress.IPv6Interface(text), dad=False)
    stack.set_gateway6("fe80::1")  # every global IPv6 destination has a first hop
    for text in sources4:
        stack.add_ip4(iface, text)
    if gateway4:
        stack.set_gateway4(gateway4)
    return stack


def _order(stack: Stack, destinations: list[str]) -> list[str]:
    return [destinations[i] for i in order_destinations(stack, [_packed(d) for d in destinations])]


# (case, IPv6 sources, IPv4 sources, IPv4 gateway, destinations as given, expected order)
CASES = [
    ("rule 2 matching scope: a global IPv6 source beats a link-local IPv4 one",
     ["2001:db8:1::2/64"], ["169.254.13.78/16"], "169.254.0.1",
     ["198.51.100.121", "2001:db8:1::1"], ["2001:db8:1::1", "198.51.100.121"]),
    ("rule 2 matching scope: only a link-local IPv6 source, a global IPv4 one",
     [], ["198.51.100.117/24"], None,
     ["2001:db8:1::1", "198.51.100.121"], ["198.51.100.121", "2001:db8:1::1"]),
    ("rule 6 higher precedence: IPv6 (40) over IPv4 (35)",
     ["2001:db8:1::2/64"], ["10.1.2.4/8"], None,
     ["10.1.2.3", "2001:db8:1::1"], ["2001:db8:1::1", "10.1.2.3"]),
    ("rule 8 smaller scope",
     ["2001:db8:1::2/64"], [], None,
     ["2001:db8:1::1", "fe80::1"], ["fe80::1", "2001:db8:1::1"]),
    ("rule 5 matching label: the 6to4 destination has a 6to4 source",
     ["2002:c633:6401::2/64"], [], None,
     ["2001:db8:1::1", "2002:c633:6401::1"], ["2002:c633:6401::1", "2001:db8:1::1"]),
    ("rule 6 higher precedence once both labels match",
     ["2002:c633:6401::2/64", "2001:db8:1::2/64"], [], None,
     ["2002:c633:6401::1", "2001:db8:1::1"], ["2001:db8:1::1", "2002:c633:6401::1"]),
    ("rule 6: ULA (3) after global (40), both with matching sources",
     ["2001:db8:1::2/64", "fd00:77::2/64"], [], None,
     ["fd00:77::1", "2001:db8:1::1"], ["2001:db8:1::1", "fd00:77::1"]),
    ("rule 9 longest matching prefix between two IPv6 destinations",
     ["fd00:77::2/64"], [], None,
     ["fd00:88::1", "fd00:77::1"], ["fd00:77::1", "fd00:88::1"]),
    ("rule 6: loopback ::1 (50) before 127.0.0.1 (35)",
     [], [], None,
     ["127.0.0.1", "::1"], ["::1", "127.0.0.1"]),
]


@pytest.mark.parametrize(("case", "sources6", "sources4", "gateway4", "given", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_rfc6724_destination_order(case: str, sources6: list[str], sources4: list[str], gateway4: str | None,
                                   given: list[str], expected: list[str]) -> None:
    stack = _stack(sources6, sources4, gateway4=gateway4)
    assert _order(stack, given) == expected
    assert _order(stack, list(reversed(given))) == expected  # the rules decide, not the input order


def test_rule_1_unusable_destination_goes_last() -> None:
    # No IPv6 default router: 2001:db8:9::1 has no source at all, so the IPv4 destination comes
    # first despite its lower precedence; two unusable destinations keep their order (rule 10).
    stack, iface = make_stack6(static=None)
    stack.add_ip4(iface, "198.18.0.2/24")
    given = ["2001:db8:9::1", "2001:db8:9::2", "198.18.0.1"]
    assert _order(stack, given) == ["198.18.0.1", "2001:db8:9::1", "2001:db8:9::2"]


def test_rule_3_deprecated_source_goes_after_a_preferred_one() -> None:
    # Without rule 3 the global destination would win on precedence (rule 6).
    stack = _stack(["2001:db8:1::2/64", "fd00:77::2/64"])
    stack.ip6.local[_packed("2001:db8:1::2")].state = AddrState.DEPRECATED
    assert _order(stack, ["2001:db8:1::1", "fd00:77::1"]) == ["fd00:77::1", "2001:db8:1::1"]


def test_rule_9_applies_only_within_a_family() -> None:
    # Same scope, label match and precedence for both IPv4 destinations: the longer match with the
    # source's prefix (198.18.0.2/24) goes first; an IPv6 one is never compared by prefix with them.
    stack, iface = make_stack6(static=None)
    stack.add_ip4(iface, "198.18.0.2/24")
    stack.set_gateway4("198.18.0.1")
    assert _order(stack, ["198.19.0.1", "198.18.0.9"]) == ["198.18.0.9", "198.19.0.1"]


def test_policy_table_and_scopes() -> None:
    assert policy(_packed("::1")) == (50, 0)
    assert policy(_packed("2001:db8::1")) == (40, 1)
    assert policy(_packed("198.18.0.1")) == (35, 4)
    assert policy(_packed("2002::1")) == (30, 2)
    assert policy(_packed("2001::1")) == (5, 5)
    assert policy(_packed("fd00::1")) == (3, 13)
    assert policy(_packed("::1.2.3.4")) == (1, 3)
    assert policy(_packed("fec0::1")) == (1, 11)
    assert policy(_packed("3ffe::1")) == (1, 12)
    assert [scope(_packed(a)) for a in ("::1", "fe80::1", "fec0::1", "fd00::1", "ff05::1", "ff02::1")] == [
        2, 2, 5, 14, 5, 2]
    assert [scope(_packed(a)) for a in ("127.0.0.1", "169.254.1.1", "10.0.0.1", "198.18.0.1")] == [2, 2, 14, 14]
