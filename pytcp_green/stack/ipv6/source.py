"""RFC 6724 scopes (§3.1, §3.2) and source address selection (§5).

:func:`scope` and :func:`common_prefix_len` are shared with destination ordering
(:mod:`pytcp_green.stack.ipv6.addrsel`, §6).  :func:`select_source` applies the §5 rules that
matter for a host: 1 same address (the caller's), 2 scope, 3 avoid deprecated (and optimistic,
RFC 4429 §3, unless ``use_optimistic`` as Linux), 5 the outgoing interface, 7 temporary
addresses (RFC 8981) first when ``use_tempaddr`` is 2, public ones otherwise (as Linux),
8 longest matching prefix.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pytcp_green.stack.ipv6.addr import Addr6, AddrState
from pytcp_green.stack.wire.ip6 import LOOPBACK6, V4MAPPED_PREFIX, is_link_local6

if TYPE_CHECKING:
    from pytcp_green.stack.interface import Interface

SCOPE_LINK = 2
SCOPE_SITE = 5
SCOPE_GLOBAL = 14


def scope(addr: bytes) -> int:
    """RFC 6724 §3.1/§3.2 scope of a 16-octet address (IPv4 as v4-mapped)."""
    if addr[:12] == V4MAPPED_PREFIX:
        if addr[12] == 127 or addr[12:14] == b"\xa9\xfe":
            return SCOPE_LINK
        return SCOPE_GLOBAL
    if addr[0] == 0xFF:
        return addr[1] & 0x0F
    if is_link_local6(addr) or addr == LOOPBACK6:  # §3.1: loopback is link-local in scope
        return SCOPE_LINK
    if addr[0] == 0xFE and addr[1] & 0xC0 == 0xC0:
        return SCOPE_SITE
    return SCOPE_GLOBAL


def common_prefix_len(a: bytes, b: bytes) -> int:
    """RFC 6724 §2.2 CommonPrefixLen of two 16-octet addresses."""
    return 128 - (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_length()


def select_source(addrs: Iterable[Addr6], dst: bytes, out_iface: Interface, *, avoid_optimistic: bool,
                  prefer_temporary: bool) -> bytes | None:
    """The best of ``addrs`` as the source toward ``dst``, sent on ``out_iface`` (rules 2-8)."""
    dscope = scope(dst)
    best: tuple[tuple[int, int, bool, bool, bool, int], bytes] | None = None
    for addr in addrs:
        if not addr.usable or addr.ip == LOOPBACK6:
            continue
        sscope = scope(addr.ip)
        if sscope < dscope and dscope <= SCOPE_LINK:
            continue  # a link-scope destination needs a link-scope source (RFC 6724 §5 rule 2)
        key = (
            0 if sscope >= dscope else 1,
            abs(sscope - dscope),
            addr.state is AddrState.DEPRECATED or (avoid_optimistic and addr.optimistic),
            addr.if6.iface is not out_iface,
            (addr.origin == "temporary") != prefer_temporary,
            -min(common_prefix_len(addr.ip, dst), addr.prefixlen),
        )
        if best is None or key < best[0]:
            best = (key, addr.ip)
    return best[1] if best else None
