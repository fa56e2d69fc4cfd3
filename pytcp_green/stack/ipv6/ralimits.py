"""The link parameters of a router advertisement as a host takes them (RFC 4861 §6.3.4), bounded as
Linux bounds them so that one forged advertisement cannot make the stack absurd.

Linux's ``ndisc_router_discovery`` (net/ipv6/ndisc.c) takes Cur Hop Limit only when it is at least
``accept_ra_min_hop_limit`` (default 1), raises a RetransTimer under HZ/100 (10 ms) and a
ReachableTime under HZ/10 (100 ms), and makes the neighbour cache's stale time three reachable
times.  Its upper bounds (MAX_SCHEDULE_TIMEOUT) do not bite on 64 bits; ours is RFC 4861 §6.2.1's
largest AdvReachableTime, one hour, for both timers, so that an advertisement cannot make DAD or
address resolution wait 49 days (the largest 32-bit millisecond value).  Every clamp is counted
under ``nd.rx.ra_<field>_raised`` or ``_lowered``, an ignored hop limit under
``nd.rx.ra_hop_limit_below_min``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytcp_green.stack.ipv6.addr import If6
    from pytcp_green.stack.services import Services
    from pytcp_green.stack.wire.icmp6 import RouterAdvert

MIN_RETRANS_TIME = 0.01  # HZ/100
MIN_REACHABLE_TIME = 0.1  # HZ/10
MAX_ND_TIMER = 3600.0  # RFC 4861 §6.2.1 MAX of AdvReachableTime (3,600,000 ms); ours for RetransTimer too


def accept_link_params(if6: If6, ra: RouterAdvert, svc: Services) -> None:
    """Cur Hop Limit, RetransTimer and ReachableTime of ``ra`` into ``if6`` (0 means unspecified, §4.2)."""
    stats = svc.stats
    if ra.cur_hop_limit:
        if ra.cur_hop_limit >= svc.sysctl.int("net.ipv6.conf.default.accept_ra_min_hop_limit"):
            if6.hop_limit = ra.cur_hop_limit
        else:
            stats["nd.rx.ra_hop_limit_below_min"] += 1
    if ra.retrans_timer:
        if6.nd_overrides["retrans_time"] = _clamp(ra.retrans_timer / 1000.0, MIN_RETRANS_TIME, "retrans_timer", svc)
    if ra.reachable_time:
        reachable = _clamp(ra.reachable_time / 1000.0, MIN_REACHABLE_TIME, "reachable_time", svc)
        if6.nd_overrides["base_reachable_time"] = reachable
        if6.nd_overrides["gc_stale_time"] = 3 * reachable  # as Linux's GC_STALETIME follows it


def _clamp(value: float, low: float, field: str, svc: Services) -> float:
    if value < low:
        svc.stats[f"nd.rx.ra_{field}_raised"] += 1
        return low
    if value > MAX_ND_TIMER:
        svc.stats[f"nd.rx.ra_{field}_lowered"] += 1
        return MAX_ND_TIMER
    return value
