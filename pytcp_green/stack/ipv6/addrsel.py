"""RFC 6724 §6 destination address selection: the order in which to try a name's addresses.

:func:`order_destinations` sorts candidate destinations (IPv6 addresses, IPv4 ones as v4-mapped
``::ffff:a.b.c.d``, RFC 6724 §2) using the stack's own source selection for ``Source(D)``, with
the rules that apply to a host:

1. avoid unusable destinations (no source address of that family and scope);
2. prefer matching scope, ``Scope(D) == Scope(Source(D))``;
3. avoid a deprecated source;
5. prefer matching label, ``Label(Source(D)) == Label(D)``, default policy table (§2.1);
6. prefer higher precedence, same table;
8. prefer smaller scope;
9. longest matching prefix, ``CommonPrefixLen(D, Source(D))`` up to the source's prefix length,
   only between two destinations of the same family;
10. otherwise keep the order given (the sort is stable).

Rule 4 (home addresses) needs Mobile IPv6 and rule 7 (native transport) tunnels; a host with
neither has no input for them, so they are skipped.  Scopes follow §3.1 (IPv6) and §3.2 (IPv4:
loopback and 169.254/16 link-local, everything else global, private ranges included), as
:func:`pytcp_green.stack.ipv6.source.scope` has them (one copy, shared with source selection).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from pytcp_green.stack.ipv6.addr import AddrState
from pytcp_green.stack.ipv6.source import common_prefix_len, scope
from pytcp_green.stack.wire.ip6 import V4MAPPED_PREFIX

if TYPE_CHECKING:
    from pytcp_green.stack.ipv4.ip import Ip4Layer
    from pytcp_green.stack.ipv6.ip import Ip6Layer


class Sources(Protocol):
    """What ordering asks of the stack (:class:`~pytcp_green.stack.stack.Stack`): its source selection
    for ``Source(D)`` and the addresses of both families."""

    @property
    def ip4(self) -> Ip4Layer: ...

    @property
    def ip6(self) -> Ip6Layer: ...

    def select_source(self, dst: bytes) -> bytes | None: ...

# RFC 6724 §2.1 default policy table: (prefix, precedence, label), looked up by longest match.
_POLICY: list[tuple[ipaddress.IPv6Network, int, int]] = sorted(
    (
        (ipaddress.IPv6Network("::1/128"), 50, 0),
        (ipaddress.IPv6Network("::/0"), 40, 1),
        (ipaddress.IPv6Network("::ffff:0:0/96"), 35, 4),
        (ipaddress.IPv6Network("2002::/16"), 30, 2),
        (ipaddress.IPv6Network("2001::/32"), 5, 5),
        (ipaddress.IPv6Network("fc00::/7"), 3, 13),
        (ipaddress.IPv6Network("::/96"), 1, 3),
        (ipaddress.IPv6Network("fec0::/10"), 1, 11),
        (ipaddress.IPv6Network("3ffe::/16"), 1, 12),
    ),
    key=lambda row: -row[0].prefixlen,
)


def policy(addr: bytes) -> tuple[int, int]:
    """(precedence, label) of a 16-octet address in the default policy table."""
    ip = ipaddress.IPv6Address(addr)
    for net, precedence, label in _POLICY:
        if ip in net:
            return precedence, label
    raise AssertionError("::/0 matches every address")


class _Candidate:
    """One destination with what the rules need to know about it, worked out once."""

    __slots__ = ("dst", "matching_prefix", "precedence", "same_label", "scope", "source", "source_deprecated",
                 "source_scope", "v4")

    def __init__(self, stack: Sources, dst: bytes) -> None:
        self.dst = dst
        self.v4 = dst[:12] == V4MAPPED_PREFIX
        self.scope = scope(dst)
        self.precedence, label = policy(dst)
        self.source = stack.select_source(dst)
        self.source_scope = 0
        self.source_deprecated = False
        self.same_label = False
        self.matching_prefix = 0
        if self.source is None:
            return
        src = self.source  # Stack.select_source answers a v4-mapped destination with a v4-mapped source
        self.source_scope = scope(src)
        self.same_label = policy(src)[1] == label
        self.source_deprecated, prefixlen = _source_facts(stack, src)
        self.matching_prefix = min(common_prefix_len(dst, src), prefixlen)


def _source_facts(stack: Sources, src: bytes) -> tuple[bool, int]:
    """(deprecated, prefix length) of one of our addresses, 16 octets (IPv4 as v4-mapped)."""
    if src[:12] == V4MAPPED_PREFIX:
        iface = stack.ip4.local.get(src[12:])
        for ifaddr in iface.ip4 if iface is not None else ():
            if ifaddr.ip.packed == src[12:]:
                return False, 96 + ifaddr.network.prefixlen
        return False, 128
    addr = stack.ip6.local.get(src)
    if addr is None:
        return False, 128
    return addr.state is AddrState.DEPRECATED, addr.prefixlen


def _compare(a: _Candidate, b: _Candidate) -> int:
    """Negative when ``a`` goes first (RFC 6724 §6, rules in order; 0 keeps the given order)."""
    usable_a, usable_b = a.source is not None, b.source is not None
    if usable_a != usable_b:  # rule 1
        return -1 if usable_a else 1
    if not usable_a:
        return 0
    match_a, match_b = a.scope == a.source_scope, b.scope == b.source_scope
    if match_a != match_b:  # rule 2
        return -1 if match_a else 1
    if a.source_deprecated != b.source_deprecated:  # rule 3
        return 1 if a.source_deprecated else -1
    if a.same_label != b.same_label:  # rule 5
        return -1 if a.same_label else 1
    if a.precedence != b.precedence:  # rule 6
        return b.precedence - a.precedence
    if a.scope != b.scope:  # rule 8
        return a.scope - b.scope
    if a.v4 == b.v4 and a.matching_prefix != b.matching_prefix:  # rule 9
        return b.matching_prefix - a.matching_prefix
    return 0  # rule 10


def order_destinations(stack: Sources, destinations: Sequence[bytes]) -> list[int]:
    """Indexes of ``destinations`` (16 octets each, IPv4 as v4-mapped) in RFC 6724 §6 order."""
    candidates = [_Candidate(stack, dst) for dst in destinations]
    # A comparison, not a key: rule 9 applies only between destinations of the same family.
    def compare(i: int, j: int) -> int:
        return _compare(candidates[i], candidates[j])

    return sorted(range(len(candidates)), key=functools.cmp_to_key(compare))
