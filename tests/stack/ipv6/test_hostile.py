"""A hostile link against the IPv6 core (issue 11): forged claims on our addresses, router
advertisement floods against the tables' caps, absurd RA timers, and nothing left behind once every
lifetime has run out.  Frames are built by scapy; time is virtual (Stack.poll)."""

from __future__ import annotations

import ipaddress
import itertools
import logging
import shutil
import sys
from pathlib import Path

import pytest
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import Ether

from pytcp_green.cli import in_thread
from pytcp_green.stack.interface import Interface, LinkKind
from pytcp_green.stack.ipv4.arp import NeighState
from pytcp_green.stack.ipv6.addr import Addr6, AddrState
from pytcp_green.stack.sockbase import AF_INET6
from pytcp_green.stack.stack import SOCK_DGRAM, Stack
from pytcp_green.stack.sysctl import Value

from ..helpers import PEER_MAC, STACK_MAC, sent
from .helpers import PEER_IP6, PEER_LL, STACK_IP6, STACK_LL, learn_peer, packed, run_until, to_stack

ALL_NODES_MAC = "33:33:00:00:00:01"


def hostile_stack(static: str | None = f"{STACK_IP6}/64", **sysctl: Value) -> tuple[Stack, Interface]:
    """A SLAAC stack (link-local and ``static`` past DAD at t=5), sysctls by their last name component."""
    names = {f"net.ipv6.conf.default.{k}": v for k, v in sysctl.items()}
    stack = Stack(seed=7, sysctl=names)
    iface = stack.add_interface("eth0", LinkKind.ETHERNET, mac=bytes.fromhex(STACK_MAC.replace(":", "")))
    stack.enable_ip6(iface, slaac=True)
    if static:
        stack.add_ip6(iface, static)
    run_until(stack, 5.0)
    iface.tx.clear()
    return stack, iface


def ra(src: str = PEER_LL, prefix: str | None = "fd00:99::", valid: int = 7200, preferred: int = 3600,
       lifetime: int = 1800, chlim: int = 64, reachable: int = 0, retrans: int = 0, mac: str = PEER_MAC) -> bytes:
    pkt = IPv6(src=src, dst="ff02::1", hlim=255) / ICMPv6ND_RA(
        chlim=chlim, routerlifetime=lifetime, reachabletime=reachable, retranstimer=retrans) / \
        ICMPv6NDOptSrcLLAddr(lladdr=mac)
    if prefix is not None:
        pkt = pkt / ICMPv6NDOptPrefixInfo(prefix=prefix, prefixlen=64, L=1, A=1, validlifetime=valid,
                                          preferredlifetime=preferred)
    return bytes(Ether(src=mac, dst=ALL_NODES_MAC) / pkt)


def slaac(stack: Stack, iface: Interface, prefix: str = "fd00:99::") -> Addr6:
    (addr,) = [a for a in stack.ip6.ifs[iface].addrs if a.origin == "slaac" and a.ip[:8] == packed(prefix)[:8]]
    return addr


def forged_na(target: str) -> bytes:
    """An unsolicited NA with Override set claiming ``target`` for the attacker's MAC (RFC 4861 §7.2.6)."""
    pkt = IPv6(src=target, dst="ff02::1", hlim=255) / ICMPv6ND_NA(R=0, S=0, O=1, tgt=target) / \
        ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC)
    return to_stack(pkt, ALL_NODES_MAC)


def dad_probe(target: str) -> bytes:
    low = packed(target)[13:]
    group = str(ipaddress.IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + low))
    pkt = IPv6(src="::", dst=group, hlim=255) / ICMPv6ND_NS(tgt=target)
    return to_stack(pkt, "33:33:ff:" + low.hex(":"))


def echo_answered(stack: Stack, iface: Interface, dst: str, src: str, now: float) -> bool:
    stack.receive(iface, to_stack(IPv6(src=src, dst=dst) / ICMPv6EchoRequest(id=9, seq=1, data=b"still here")), now)
    return any(f.haslayer(ICMPv6EchoReply) and f[IPv6].src == dst and f[ICMPv6EchoReply].data == b"still here"
               for f in sent(iface))


# -- addresses past DAD are defended and kept (RFC 4862 §5.4.5) ----------------------------------------------


def test_forged_claims_on_addresses_past_dad_are_counted_logged_and_change_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    stack, iface = hostile_stack(use_tempaddr=1)
    stack.receive(iface, ra(), 6.0)
    run_until(stack, 12.0)
    temp = [a for a in stack.ip6.ifs[iface].addrs if a.origin == "temporary"]
    ours = {"static": STACK_IP6, "link": STACK_LL,
            "slaac": str(ipaddress.IPv6Address(slaac(stack, iface).ip)),
            "temporary": str(ipaddress.IPv6Address(temp[0].ip))}
    learn_peer(stack, iface, 12.0)
    learn_peer(stack, iface, 12.0, peer=PEER_LL)
    sent(iface)
    caplog.set_level(logging.WARNING, logger="pytcp_green.stack.ipv6.nd")
    now = 20.0
    for origin, ip in ours.items():
        assert stack.ip6.local[packed(ip)].origin == origin
        for _ in range(5):  # a flood of claims: counted each, logged at most once per interval
            stack.receive(iface, forged_na(ip), now)
            stack.receive(iface, dad_probe(ip), now)
            frames = sent(iface)
            # The probe is answered to all nodes, Solicited clear, Override set (RFC 4861 §7.2.4).
            (na,) = [f for f in frames if f.haslayer(ICMPv6ND_NA)]
            assert (na[IPv6].dst, na[IPv6].src, na[ICMPv6ND_NA].tgt) == ("ff02::1", ip, ip)
            assert (na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (0, 1) and na[Ether].dst == ALL_NODES_MAC
            assert na[ICMPv6NDOptDstLLAddr].lladdr == STACK_MAC
            now += 0.5
        addr = stack.ip6.local[packed(ip)]
        assert addr.state is AddrState.PREFERRED and stack.is_local(addr.ip)
        peer = PEER_LL if origin == "link" else PEER_IP6
        assert echo_answered(stack, iface, ip, peer, now)
        now += 20.0
    assert stack.stats["nd.rx.na_for_our_address"] == 20
    assert stack.stats["nd.rx.dad_probe_for_our_address"] == 20
    assert stack.stats["ip6.dad.duplicate"] == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4  # one per address: its five seconds of claims fall within one interval
    assert all("keeping it" in r.getMessage() for r in warnings)


def test_a_tentative_slaac_address_is_still_withdrawn_and_its_duplicate_expires() -> None:
    stack, iface = hostile_stack(static=None)
    stack.receive(iface, ra(valid=600, preferred=300), 6.0)
    addr = slaac(stack, iface)
    assert addr.state is AddrState.TENTATIVE
    stack.receive(iface, forged_na(str(ipaddress.IPv6Address(addr.ip))), 6.1)
    assert addr.state is AddrState.DUPLICATE and stack.stats["ip6.dad.duplicate_na"] == 1
    run_until(stack, 605.0)
    assert addr in stack.ip6.ifs[iface].addrs  # kept for tools while its lifetime runs
    run_until(stack, 607.0)
    assert addr not in stack.ip6.ifs[iface].addrs and stack.stats["ip6.dad.duplicate_expired"] == 1


def test_a_duplicate_with_an_infinite_lifetime_is_forgotten_after_two_hours_and_slaac_tries_again() -> None:
    stack, iface = hostile_stack(static=None)
    stack.receive(iface, ra(valid=0xFFFFFFFF, preferred=0xFFFFFFFF), 6.0)
    addr = slaac(stack, iface)
    stack.receive(iface, forged_na(str(ipaddress.IPv6Address(addr.ip))), 6.1)
    assert addr.state is AddrState.DUPLICATE
    run_until(stack, 6.1 + 7199)
    assert addr in stack.ip6.ifs[iface].addrs
    run_until(stack, 6.1 + 7201)
    assert addr not in stack.ip6.ifs[iface].addrs
    stack.receive(iface, ra(valid=0xFFFFFFFF, preferred=0xFFFFFFFF), 7300.0)
    run_until(stack, 7310.0)
    assert slaac(stack, iface).state is AddrState.PREFERRED  # nobody claimed it this time


# -- caps on what router advertisements create ---------------------------------------------------------------


def flood(stack: Stack, iface: Interface, count: int, now: float, **kw: int) -> None:
    for i in range(count):
        mac = f"02:aa:00:00:{i >> 8:02x}:{i & 0xFF:02x}"
        stack.receive(iface, ra(src=f"fe80::aa:{i + 1:x}", prefix=f"fd00:{0x1000 + i:x}::", mac=mac, **kw), now)
        now += 0.01


def footprint(stack: Stack, iface: Interface) -> dict[str, int]:
    if6 = stack.ip6.ifs[iface]
    assert if6.nd is not None
    return {"addresses": len(if6.addrs), "local": len(stack.ip6.local), "routers": len(if6.routers),
            "prefixes": len(if6.onlink), "neighbours": len(if6.nd.entries), "router flags": len(if6.nd.routers),
            "temporaries": len(stack.ip6.addrconf.temporary), "timers": len(stack.timers)}


def test_100_ras_stay_under_every_cap_and_leave_nothing_once_their_lifetimes_end() -> None:
    fresh, fresh_iface = hostile_stack(static=None, use_tempaddr=2)
    run_until(fresh, 20000.0)
    stack, iface = hostile_stack(static=None, use_tempaddr=2)
    flood(stack, iface, 100, 6.0, valid=900, preferred=600, lifetime=300)
    if6 = stack.ip6.ifs[iface]
    assert len(if6.addrs) == 16  # max_addresses: the link-local, then 15 SLAAC and temporary addresses
    assert stack.stats["ip6.slaac.max_addresses"] + stack.stats["ip6.temporary.max_addresses"] >= 85
    assert len(if6.routers) == 8 and stack.stats["nd.drop.ra_router_list_full"] == 92
    assert len(if6.ra_prefixes) == 16 and stack.stats["nd.drop.ra_prefix_list_full"] == 84
    assert if6.nd is not None and len(if6.nd.routers) <= len(if6.nd.entries)
    # Refreshing what exists (the same 100 RAs again) re-arms timers, never adds any.
    run_until(stack, 10.0)
    before = footprint(stack, iface)
    flood(stack, iface, 100, 10.0, valid=900, preferred=600, lifetime=300)
    after = footprint(stack, iface)
    assert after["timers"] <= before["timers"] and after["addresses"] == before["addresses"]
    run_until(stack, 20000.0)
    left, clean = footprint(stack, iface), footprint(fresh, fresh_iface)
    assert all(left[k] <= clean[k] for k in left), (left, clean)
    assert [a.origin for a in if6.addrs] == ["link"]


def test_a_flood_of_refreshing_ras_moves_lifetimes_without_piling_heap_entries() -> None:
    stack, iface = hostile_stack(static=None, use_tempaddr=2)
    for i in range(2000):
        stack.receive(iface, ra(valid=86400, preferred=14400, lifetime=9000), 6.0 + i * 0.05)
    live = len(stack.timers)
    # Timers deletes lazily: before deadline.py each RA left three cancelled entries for hours (6,005).
    assert len(stack.timers._heap) <= live + 4, (live, len(stack.timers._heap))
    router = stack.ip6.ifs[iface].routers[packed(PEER_LL)]
    assert router is not None and router.when == pytest.approx(6.0 + 1999 * 0.05 + 9000)
    run_until(stack, 6.0 + 1999 * 0.05 + 8999)
    assert packed(PEER_LL) in stack.ip6.ifs[iface].routers  # the moved deadline holds, not the first one
    run_until(stack, 6.0 + 1999 * 0.05 + 9001)
    assert packed(PEER_LL) not in stack.ip6.ifs[iface].routers


def test_forged_redirects_are_capped_and_expire() -> None:
    stack, iface = hostile_stack(static=None)
    stack.receive(iface, ra(), 6.0)
    run_until(stack, 12.0)
    fresh_timers = len(stack.timers)
    for i in range(1500):  # valid in form: from the current first hop, link-local target (RFC 4861 §8.1)
        rd = IPv6(src=PEER_LL, dst=STACK_LL, hlim=255) / ICMPv6ND_Redirect(
            tgt="fe80::9", dst=f"2001:db8::{i + 1:x}") / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:09")
        stack.receive(iface, to_stack(rd), 20.0 + i * 0.01)
    assert stack.stats["nd.rx.redirect"] == 1500
    assert len(stack.ip6.redirects) == 1024 and stack.stats["nd.redirect_evicted"] == 476
    assert stack.ip6.route(packed("2001:db8::1")) == (iface, packed(PEER_LL))  # the oldest gave way
    assert stack.ip6.route(packed("2001:db8::5dc")) == (iface, packed("fe80::9"))
    assert len(stack.timers) == fresh_timers + 2  # one sweep for all the redirects, one for fe80::9's entry
    run_until(stack, 20.0 + 15.0 + 60.0)
    assert not stack.ip6.redirects and stack.stats["nd.redirect_expired"] == 1024
    assert stack.ip6.route(packed("2001:db8::5dc")) == (iface, packed(PEER_LL))


def test_max_addresses_zero_is_unlimited() -> None:
    stack, iface = hostile_stack(static=None, max_addresses=0, ra_max_prefixes=0, ra_max_routers=0)
    flood(stack, iface, 40, 6.0)
    if6 = stack.ip6.ifs[iface]
    assert len([a for a in if6.addrs if a.origin == "slaac"]) == 40 and len(if6.routers) == 40
    assert stack.stats["ip6.slaac.max_addresses"] == 0


def test_an_ra_cannot_take_the_prefix_of_an_address_set_by_hand() -> None:
    stack, iface = hostile_stack()
    stack.receive(iface, ra(prefix="fd00:77::", valid=0, preferred=0), 6.0)
    stack.receive(iface, ra(prefix="fd00:77::", valid=5, preferred=0), 6.0)
    run_until(stack, 60.0)
    assert stack.ip6.route(packed(PEER_IP6)) == (iface, packed(PEER_IP6))  # still on-link, not via the router
    assert stack.stats["nd.rx.ra_prefix_static"] == 2


# -- absurd RA timers are clamped (Linux's ndisc_router_discovery) --------------------------------------------


def ns_times(stack: Stack, iface: Interface, start: float, until: float, target: str) -> list[float]:
    """When NSs for ``target`` left, driving the timers from ``start`` up to ``until``."""
    times = [start] if any(f.haslayer(ICMPv6ND_NS) and f[ICMPv6ND_NS].tgt == target for f in sent(iface)) else []
    while (deadline := stack.next_deadline()) is not None and deadline <= until:
        stack.poll(deadline)
        times += [deadline for f in sent(iface) if f.haslayer(ICMPv6ND_NS) and f[ICMPv6ND_NS].tgt == target]
    return times


@pytest.mark.parametrize(("retrans_ms", "gap", "counter"), [
    (1, 0.01, "nd.rx.ra_retrans_timer_raised"),  # HZ/100
    (0xFFFFFFFF, 3600.0, "nd.rx.ra_retrans_timer_lowered"),  # 49 days would be an hour
    (250, 0.25, None),
])
def test_retrans_timer_clamped_as_seen_on_the_wire(retrans_ms: int, gap: float, counter: str | None) -> None:
    stack, iface = hostile_stack()
    stack.receive(iface, ra(retrans=retrans_ms), 6.0)
    run_until(stack, 12.0)
    sent(iface)
    stack.socket(AF_INET6, SOCK_DGRAM).sendto(b"x", ("fd00:77::99", 9), 20.0)
    times = ns_times(stack, iface, 20.0, 20.0 + 10 * gap, "fd00:77::99")
    assert len(times) == 3  # mcast_solicit, one retrans time apart, then given up
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [gap, gap]
    if counter:
        assert stack.stats[counter] == 1


def test_reachable_time_clamped_to_100ms_and_stale_time_follows() -> None:
    stack, iface = hostile_stack()
    stack.receive(iface, ra(reachable=1), 6.0)
    assert stack.stats["nd.rx.ra_reachable_time_raised"] == 1
    nd = stack.ip6.ifs[iface].nd
    assert nd is not None and nd.knob("base_reachable_time") == 0.1 and nd.knob("gc_stale_time") == pytest.approx(0.3)
    learn_peer(stack, iface, 10.0)
    nd.confirm(packed(PEER_IP6), 10.0)
    entry = nd.entries[packed(PEER_IP6)]
    assert entry.state is NeighState.REACHABLE
    run_until(stack, 10.049)  # RFC 4861 §6.3.2: a random 0.5..1.5 times the base
    assert entry.state is NeighState.REACHABLE
    run_until(stack, 10.151)
    assert entry.state is NeighState.STALE
    run_until(stack, 10.151 + 0.301)
    assert packed(PEER_IP6) not in nd.entries  # gc_stale_time = 3 reachable times, as Linux


def test_hop_limit_below_accept_ra_min_hop_limit_is_ignored() -> None:
    stack, iface = hostile_stack(accept_ra_min_hop_limit=32)
    stack.receive(iface, ra(chlim=2), 6.0)
    assert stack.ip6.ifs[iface].hop_limit is None and stack.stats["nd.rx.ra_hop_limit_below_min"] == 1
    stack.receive(iface, ra(chlim=40), 7.0)
    assert stack.ip6.ifs[iface].hop_limit == 40


def test_lifetimes_below_accept_ra_min_lft_are_ignored() -> None:
    stack, iface = hostile_stack(static=None, accept_ra_min_lft=600)
    stack.receive(iface, ra(valid=300, preferred=300, lifetime=300), 6.0)
    if6 = stack.ip6.ifs[iface]
    assert not if6.routers and not if6.ra_prefixes and not [a for a in if6.addrs if a.origin == "slaac"]
    assert stack.stats["nd.rx.ra_router_lifetime_too_short"] == 1
    assert stack.stats["nd.rx.ra_prefix_lifetime_too_short"] == 1
    stack.receive(iface, ra(valid=900, preferred=600, lifetime=900), 7.0)
    assert if6.routers and if6.ra_prefixes and slaac(stack, iface)


# -- the lab: forged claims from the kernel's side of the TAP ------------------------------------------------

FORGE = """
import sys
from scapy.all import Ether, sendp
from scapy.layers.inet6 import IPv6, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr
dev, stack_mac, attacker = sys.argv[1:4]
frames = []
for target in sys.argv[4:]:
    low = bytes.fromhex(target.split(":")[-2].zfill(4) + target.split(":")[-1].zfill(4))[-3:]
    group = "ff02::1:ff%02x:%02x%02x" % tuple(low)
    # sent to the stack's MAC only, so that the kernel's own neighbour cache is not poisoned
    frames.append(Ether(src=attacker, dst=stack_mac) / IPv6(src=target, dst="ff02::1", hlim=255)
                  / ICMPv6ND_NA(R=0, S=0, O=1, tgt=target) / ICMPv6NDOptDstLLAddr(lladdr=attacker))
    frames.append(Ether(src=attacker, dst="33:33:ff:%02x:%02x:%02x" % tuple(low))
                  / IPv6(src="::", dst=group, hlim=255) / ICMPv6ND_NS(tgt=target))
sendp(frames * 3, iface=dev, verbose=False)
"""


@pytest.mark.lab
def test_lab_forged_na_and_dad_probes_do_not_take_the_static_or_slaac_address(tmp_path: Path) -> None:
    from lab.helpers import run

    from pytcp_green.host import Host, StackOptions
    from pytcp_green.lab import lab_unavailable_reason
    from pytcp_green.lab.radvd import Radvd
    from pytcp_green.stack.ipv6.addrconf import eui64_iid

    from .test_lab import tshark, wait_for

    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)
    if shutil.which("radvd") is None or shutil.which("tshark") is None:
        pytest.skip("radvd and tshark are needed")
    pcap = tmp_path / "hostile6.pcap"
    with Host(StackOptions(lab=True, pcap=str(pcap))) as h:
        assert h.lab is not None and h.iface is not None and h.iface.mac is not None and h.pcap is not None
        radvd = Radvd(h.lab, tmp_path)
        radvd.start()
        try:
            glob = str(ipaddress.IPv6Address(packed("fd00:77::")[:8] + eui64_iid(h.iface.mac)))
            ours = [packed(a) for a in (STACK_IP6, glob)]
            stack = h.stack
            wait_for(h, lambda: all(a in stack.ip6.local and stack.ip6.local[a].confirmed for a in ours), 40,
                     "the static and SLAAC addresses past DAD")
            out = run(h, [sys.executable, "-c", FORGE, h.lab.device.name, h.iface.mac.hex(":"),
                          "02:66:66:66:66:66", STACK_IP6, glob])
            assert out.returncode == 0, out.stderr
            wait_for(h, lambda: stack.stats["nd.rx.dad_probe_for_our_address"] >= 6
                     and stack.stats["nd.rx.na_for_our_address"] >= 6, 15, "the forged frames")
            for a in ours:
                assert stack.ip6.local[a].state is AddrState.PREFERRED
            assert stack.stats["ip6.dad.duplicate"] == 0
            for target in (STACK_IP6, glob):
                ping = run(h, ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", target])
                assert "3 packets transmitted, 3 received" in ping.stdout, ping.stdout + ping.stderr
            h.pcap.flush()
            mac = h.iface.mac.hex(":")
            for target in (STACK_IP6, glob):
                # the defence: an NA for it from the stack to all nodes, Override set, Solicited clear
                rows = tshark(pcap, f"icmpv6.type == 136 && ipv6.dst == ff02::1 && ipv6.src == {target}"
                                    f" && icmpv6.nd.na.target_address == {target} && eth.src == {mac}",
                              ["icmpv6.nd.na.flag.o", "icmpv6.nd.na.flag.s"])
                assert len(rows) >= 3, rows  # one per probe
                assert all(r.split("\t")[0] in ("1", "True") and r.split("\t")[1] in ("0", "False")
                           for r in rows), rows
        finally:
            in_thread(radvd.stop)


def test_an_ra_from_our_own_address_makes_no_default_router() -> None:
    stack, iface = hostile_stack()
    stack.receive(iface, ra(src=STACK_LL, prefix=None), 6.0)
    assert not stack.ip6.ifs[iface].routers and stack.stats["nd.rx.ra_from_local"] == 1
    assert stack.ip6.route(packed("2001:db8::1")) is None
