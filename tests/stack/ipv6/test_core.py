"""IPv6 core behaviour (RFC 8200, 4443, 4861, 4862, 3810, 6724), peer frames built and read by scapy."""

from __future__ import annotations

import errno
import itertools

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    HBHOptUnknown,
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6MLQuery2,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    defragment6,
    fragment6,
)
from scapy.layers.l2 import Ether

from pytcp_green.stack.ipv4.arp import NeighState
from pytcp_green.stack.ipv6.ip import AddrState
from pytcp_green.stack.sockbase import AF_INET6
from pytcp_green.stack.stack import SOCK_DGRAM

from ..helpers import PEER_MAC, STACK_MAC, sent
from .helpers import PEER_IP6, PEER_LL, STACK_IP6, STACK_LL, learn_peer, make_stack6, packed, run_until, to_stack

# -- link-local, DAD, MLD --------------------------------------------------------------------------


def test_link_local_dad_and_mld_report_on_the_wire() -> None:
    stack, iface = make_stack6(static=None, settle=False)
    first = sent(iface)
    # RFC 4862 §5.4.2: join the solicited-node group (MLDv2 report) before probing.
    (report,) = first
    assert report[IPv6].src == "::" and report[IPv6].dst == "ff02::16" and report[IPv6].hlim == 1
    assert report.haslayer(IPv6ExtHdrHopByHop) and report[Ether].dst == "33:33:00:00:00:16"
    rec = report[ICMPv6MLReport2].records[0]
    assert (rec.rtype, rec.dst) == (4, "ff02::1:ff00:2")
    assert stack.ip6.local[packed(STACK_LL)].state is AddrState.TENTATIVE
    assert not stack.is_local(packed(STACK_LL))
    run_until(stack, 3.0)
    frames = sent(iface)
    (ns,) = [f for f in frames if f.haslayer(ICMPv6ND_NS)]
    assert ns[IPv6].src == "::" and ns[IPv6].dst == "ff02::1:ff00:2" and ns[IPv6].hlim == 255
    assert ns[ICMPv6ND_NS].tgt == STACK_LL and not ns.haslayer(ICMPv6NDOptSrcLLAddr)
    assert ns[Ether].dst == "33:33:ff:00:00:02"
    assert len([f for f in frames if f.haslayer(ICMPv6MLReport2)]) == 1  # robustness 2: one retransmission
    assert stack.ip6.local[packed(STACK_LL)].state is AddrState.PREFERRED
    assert stack.is_local(packed(STACK_LL)) and stack.stats["ip6.dad.ok"] == 1


@pytest.mark.parametrize("how", ["na", "ns"])
def test_dad_detects_a_duplicate(how: str) -> None:
    stack, iface = make_stack6(static=None, settle=False)
    stack.add_ip6(iface, f"{STACK_IP6}/64")
    run_until(stack, 0.0)
    iface.tx.clear()
    if how == "na":
        pkt = IPv6(src=STACK_IP6, dst="ff02::1", hlim=255) / ICMPv6ND_NA(R=0, S=0, O=1, tgt=STACK_IP6) / \
            ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC)
        dst_mac = "33:33:00:00:00:01"
    else:
        pkt = IPv6(src="::", dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=STACK_IP6)
        dst_mac = "33:33:ff:00:00:02"
    stack.receive(iface, to_stack(pkt, dst_mac), 0.5)
    assert stack.stats["ip6.dad.duplicate"] == 1
    assert not stack.is_local(packed(STACK_IP6))
    run_until(stack, 5.0)
    assert not stack.is_local(packed(STACK_IP6))
    assert stack.is_local(packed(STACK_LL))  # the link-local passed its own DAD
    assert stack.ip6.select_source(packed(PEER_IP6)) != packed(STACK_IP6)
    assert any("fd00:77::2/64 static duplicate" in row for row in [
        f"{a.interface} {a.origin} {a.state.value}" for a in stack.ip6.ifs[iface].addrs])


def test_stable_identifiers_retry_after_a_duplicate() -> None:
    import ipaddress

    from pytcp_green.stack.interface import LinkKind
    from pytcp_green.stack.stack import Stack

    stack = Stack(seed=3, sysctl={"net.ipv6.conf.default.addr_gen_mode": 2,
                                  "net.ipv6.conf.default.stable_secret": "2001:db8::5ec:4e7"})
    iface = stack.add_interface("eth0", LinkKind.ETHERNET, mac=bytes.fromhex(STACK_MAC.replace(":", "")))
    stack.enable_ip6(iface, slaac=False)
    (ll,) = [a for a in stack.ip6.ifs[iface].addrs if a.origin == "link"]
    assert ll.ip[:8] == b"\xfe\x80" + bytes(6) and ll.ip != packed(STACK_LL)  # RFC 7217, not EUI-64
    target = str(ipaddress.IPv6Address(ll.ip))
    sn = f"ff02::1:ff{ll.ip[13]:02x}:{ll.ip[14]:02x}{ll.ip[15]:02x}"
    pkt = IPv6(src="::", dst=sn, hlim=255) / ICMPv6ND_NS(tgt=target)
    stack.receive(iface, to_stack(pkt, f"33:33:ff:{ll.ip[13]:02x}:{ll.ip[14]:02x}:{ll.ip[15]:02x}"), 0.1)
    assert stack.stats["ip6.dad.retry_stable"] == 1
    run_until(stack, 5.0)
    fresh = [a for a in stack.ip6.ifs[iface].addrs if a.origin == "link" and a.usable]
    assert len(fresh) == 1 and fresh[0].ip != ll.ip and fresh[0].dad_counter == 1


# -- echo, NS/NA, resolution -------------------------------------------------------------------------


@pytest.mark.parametrize("dst", [STACK_IP6, STACK_LL, "ff02::1"])
def test_echo_is_answered(dst: str) -> None:
    stack, iface = make_stack6()
    src = PEER_LL if dst != STACK_IP6 else PEER_IP6
    learn_peer(stack, iface, peer=src)
    dst_mac = "33:33:00:00:00:01" if dst == "ff02::1" else STACK_MAC
    stack.receive(iface, to_stack(IPv6(src=src, dst=dst) / ICMPv6EchoRequest(id=7, seq=3, data=b"x" * 100), dst_mac),
                  10.0)
    (reply,) = sent(iface)
    assert reply[IPv6].dst == src and reply[IPv6].src == (dst if dst != "ff02::1" else STACK_LL)
    assert reply[ICMPv6EchoReply].id == 7 and reply[ICMPv6EchoReply].data == b"x" * 100
    assert reply[Ether].dst == PEER_MAC


def test_ns_for_our_address_gets_a_solicited_na_and_teaches_the_sender() -> None:
    stack, iface = make_stack6()
    ns = IPv6(src=PEER_IP6, dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=STACK_IP6) / \
        ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC)
    stack.receive(iface, to_stack(ns, "33:33:ff:00:00:02"), 10.0)
    (na,) = sent(iface)
    assert na[IPv6].src == STACK_IP6 and na[IPv6].dst == PEER_IP6 and na[IPv6].hlim == 255
    assert (na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O, na[ICMPv6ND_NA].R, na[ICMPv6ND_NA].tgt) == (1, 1, 0, STACK_IP6)
    assert na[ICMPv6NDOptDstLLAddr].lladdr == STACK_MAC and na[Ether].dst == PEER_MAC
    nd = stack.ip6.ifs[iface].nd
    assert nd is not None and nd.entries[packed(PEER_IP6)].state is NeighState.DELAY  # STALE, then used


@pytest.mark.parametrize("hlim", [64, 254])
def test_nd_from_off_link_is_dropped(hlim: int) -> None:
    stack, iface = make_stack6()
    ns = IPv6(src=PEER_IP6, dst="ff02::1:ff00:2", hlim=hlim) / ICMPv6ND_NS(tgt=STACK_IP6)
    stack.receive(iface, to_stack(ns, "33:33:ff:00:00:02"), 10.0)
    assert sent(iface) == [] and stack.stats["nd.drop.invalid_ns"] == 1


def test_resolution_queues_then_flushes_and_nud_reaches_reachable() -> None:
    stack, iface = make_stack6()
    sock = stack.socket(AF_INET6, SOCK_DGRAM)
    for i in range(3):
        sock.sendto(b"p%d" % i, (PEER_IP6, 9999), 10.0)
    (ns,) = sent(iface)
    assert ns[IPv6].dst == "ff02::1:ff00:1" and ns[IPv6].src == STACK_IP6 and ns[ICMPv6ND_NS].tgt == PEER_IP6
    assert ns[ICMPv6NDOptSrcLLAddr].lladdr == STACK_MAC
    na = IPv6(src=PEER_IP6, dst=STACK_IP6, hlim=255) / ICMPv6ND_NA(S=1, O=1, tgt=PEER_IP6) / \
        ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC)
    stack.receive(iface, to_stack(na), 10.1)
    frames = sent(iface)
    assert [bytes(f[UDP].payload) for f in frames] == [b"p0", b"p1", b"p2"]
    assert all(f[Ether].dst == PEER_MAC for f in frames)
    nd = stack.ip6.ifs[iface].nd
    assert nd is not None and nd.entries[packed(PEER_IP6)].state is NeighState.REACHABLE


def test_na_without_override_does_not_replace_a_known_address() -> None:
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    na = IPv6(src=PEER_IP6, dst=STACK_IP6, hlim=255) / ICMPv6ND_NA(S=0, O=0, tgt=PEER_IP6) / \
        ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:99")
    stack.receive(iface, to_stack(na), 11.0)
    nd = stack.ip6.ifs[iface].nd
    assert nd is not None and nd.entries[packed(PEER_IP6)].mac == bytes.fromhex(PEER_MAC.replace(":", ""))


# -- router discovery and SLAAC ----------------------------------------------------------------------


def ra(prefix: str = "fd00:99::", valid: int = 7200, preferred: int = 3600, lifetime: int = 1800,
       mtu: int | None = None) -> bytes:
    pkt = IPv6(src=PEER_LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA(chlim=42, routerlifetime=lifetime) / \
        ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC)
    if mtu is not None:
        pkt = pkt / ICMPv6NDOptMTU(mtu=mtu)
    pkt = pkt / ICMPv6NDOptPrefixInfo(prefix=prefix, prefixlen=64, L=1, A=1, validlifetime=valid,
                                      preferredlifetime=preferred)
    return to_stack(pkt, "33:33:00:00:00:01")


def test_router_solicitations_back_off() -> None:
    stack, iface = make_stack6(slaac=True, static=None, settle=False)
    times = []
    now = 0.0
    while (deadline := stack.next_deadline()) is not None and deadline < 200:
        now = deadline
        stack.poll(now)
        for f in sent(iface):
            if f.haslayer(ICMPv6ND_RS):
                assert f[IPv6].src == STACK_LL and f[IPv6].dst == "ff02::2" and f[IPv6].hlim == 255
                assert f[ICMPv6NDOptSrcLLAddr].lladdr == STACK_MAC
                times.append(now)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) >= 4
    assert 3.6 <= gaps[0] <= 4.4  # RFC 7559: IRT 4 s, ±10 %
    assert all(1.6 <= b / a <= 2.5 for a, b in itertools.pairwise(gaps))  # doubling


def test_ra_gives_slaac_address_default_router_mtu_and_stops_solicitations() -> None:
    stack, iface = make_stack6(slaac=True, static=None)
    stack.receive(iface, ra(mtu=1400), 10.0)
    if6 = stack.ip6.ifs[iface]
    (addr,) = [a for a in if6.addrs if a.origin == "slaac"]
    assert addr.ip == packed("fd00:99::ff:fe00:2") and addr.state is AddrState.TENTATIVE
    assert if6.mtu == 1400 and if6.hop_limit == 42 and packed(PEER_LL) in if6.routers
    run_until(stack, 15.0)
    assert addr.state is AddrState.PREFERRED
    frames = sent(iface)
    assert [f for f in frames if f.haslayer(ICMPv6ND_NS) and f[IPv6].src == "::"]  # its DAD
    assert not [f for f in frames if f.haslayer(ICMPv6ND_RS)]  # solicitations stopped
    # Off-link destinations go to the router, from the global address, with the RA's hop limit.
    assert stack.ip6.route(packed("2001:db8::1")) == (iface, packed(PEER_LL))
    assert stack.select_source(packed("2001:db8::1")) == addr.ip
    sock = stack.socket(AF_INET6, SOCK_DGRAM)
    sock.sendto(b"out", ("2001:db8::1", 53), 16.0)
    (dgram,) = sent(iface)
    assert dgram[Ether].dst == PEER_MAC and dgram[IPv6].hlim == 42 and dgram[IPv6].src == "fd00:99::ff:fe00:2"
    assert stack.path_mtu(packed("2001:db8::1")) == 1400


def test_prefix_lifetimes_deprecate_then_remove_and_two_hour_rule() -> None:
    stack, iface = make_stack6(slaac=True, static=None)
    stack.receive(iface, ra(valid=100, preferred=50), 10.0)
    run_until(stack, 15.0)
    (addr,) = [a for a in stack.ip6.ifs[iface].addrs if a.origin == "slaac"]
    assert addr.state is AddrState.PREFERRED
    run_until(stack, 61.0)
    assert addr.state is AddrState.DEPRECATED and stack.is_local(addr.ip)
    run_until(stack, 111.0)
    assert not stack.is_local(addr.ip)
    # A new address with a long lifetime: an RA saying 60 s cannot cut it below two hours (RFC 4862 §5.5.3 e).
    stack.receive(iface, ra(valid=86400, preferred=86400), 200.0)
    run_until(stack, 205.0)
    (addr,) = [a for a in stack.ip6.ifs[iface].addrs if a.origin == "slaac"]
    stack.receive(iface, ra(valid=60, preferred=60), 210.0)
    assert addr.valid_until == 210.0 + 7200


def test_router_lifetime_zero_removes_the_default_router() -> None:
    stack, iface = make_stack6(slaac=True, static=None)
    stack.receive(iface, ra(), 10.0)
    assert stack.ip6.route(packed("2001:db8::1")) is not None
    stack.receive(iface, ra(lifetime=0), 11.0)
    assert stack.ip6.route(packed("2001:db8::1")) is None


def test_ra_with_bad_hop_limit_or_global_source_is_ignored() -> None:
    stack, iface = make_stack6(slaac=True, static=None)
    bad = IPv6(src=PEER_LL, dst="ff02::1", hlim=64) / ICMPv6ND_RA()
    stack.receive(iface, to_stack(bad, "33:33:00:00:00:01"), 10.0)
    bad = IPv6(src=PEER_IP6, dst="ff02::1", hlim=255) / ICMPv6ND_RA()
    stack.receive(iface, to_stack(bad, "33:33:00:00:00:01"), 10.0)
    assert stack.stats["nd.drop.invalid_ra"] == 2 and not stack.ip6.ifs[iface].routers


def test_redirect_changes_the_first_hop() -> None:
    stack, iface = make_stack6(slaac=True, static=None)
    stack.receive(iface, ra(), 10.0)
    run_until(stack, 15.0)
    rd = IPv6(src=PEER_LL, dst=STACK_LL, hlim=255) / ICMPv6ND_Redirect(tgt="fe80::9", dst="2001:db8::77") / \
        ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:09")
    stack.receive(iface, to_stack(rd), 16.0)
    assert stack.ip6.route(packed("2001:db8::77")) == (iface, packed("fe80::9"))
    assert stack.ip6.route(packed("2001:db8::78")) == (iface, packed(PEER_LL))


# -- extension headers (RFC 8200 §4) ------------------------------------------------------------------


def udp_to_stack(ext: object = None, dport: int = 4000) -> bytes:
    pkt = IPv6(src=PEER_IP6, dst=STACK_IP6)
    if ext is not None:
        pkt = pkt / ext
    return to_stack(pkt / UDP(sport=5000, dport=dport) / b"hello")


def bound(stack: object, port: int = 4000) -> object:
    sock = stack.socket(AF_INET6, SOCK_DGRAM)  # type: ignore[attr-defined]
    sock.bind(("::", port))
    return sock


def param_problem(iface: object) -> ICMPv6ParamProblem | None:
    frames = sent(iface)  # type: ignore[arg-type]
    found = [f for f in frames if f.haslayer(ICMPv6ParamProblem)]
    return found[0][ICMPv6ParamProblem] if found else None


def test_known_options_and_skippable_unknown_option_deliver() -> None:
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    sock = bound(stack)
    ext = IPv6ExtHdrHopByHop(options=[HBHOptUnknown(otype=0x1E, optdata=b"ab")]) / IPv6ExtHdrDestOpt()
    stack.receive(iface, udp_to_stack(ext), 11.0)
    assert sock.recvfrom(100, 11.0)[0] == b"hello"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("otype", "dst", "want_icmp"), [
    (0x5E, STACK_IP6, False),  # 01: discard silently
    (0x9E, STACK_IP6, True),  # 10: discard + ICMP
    (0x9E, "ff02::1", True),  # 10: even to multicast
    (0xDE, STACK_IP6, True),  # 11: ICMP to unicast
    (0xDE, "ff02::1", False),  # 11: not to multicast
])
def test_unknown_option_actions(otype: int, dst: str, want_icmp: bool) -> None:
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    sock = bound(stack)
    pkt = IPv6(src=PEER_IP6, dst=dst) / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=otype, optdata=b"z")]) / \
        UDP(sport=5000, dport=4000) / b"hello"
    stack.receive(iface, to_stack(pkt, STACK_MAC if dst == STACK_IP6 else "33:33:00:00:00:01"), 11.0)
    assert sock.poll_mask() & 1 == 0  # type: ignore[attr-defined]
    pp = param_problem(iface)
    assert (pp is not None) == want_icmp
    if pp is not None:
        assert pp.code == 2 and pp.ptr == 42  # 40 (IPv6) + 2 (options start)


def test_unknown_next_header_and_misplaced_hop_by_hop() -> None:
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    stack.receive(iface, to_stack(IPv6(src=PEER_IP6, dst=STACK_IP6, nh=253) / b"12345678"), 11.0)
    pp = param_problem(iface)
    assert pp is not None and (pp.code, pp.ptr) == (1, 6)
    pkt = IPv6(src=PEER_IP6, dst=STACK_IP6) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / UDP(dport=4000)
    stack.receive(iface, to_stack(pkt), 11.0)
    pp = param_problem(iface)
    assert pp is not None and (pp.code, pp.ptr) == (1, 40)


def test_routing_header_with_segments_left_is_refused_and_without_is_skipped() -> None:
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    sock = bound(stack)
    stack.receive(iface, udp_to_stack(IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:db8::9"])), 11.0)
    pp = param_problem(iface)
    assert pp is not None and (pp.code, pp.ptr) == (0, 42)
    stack.receive(iface, udp_to_stack(IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:db8::9"])), 11.0)
    assert sock.recvfrom(100, 11.0)[0] == b"hello"  # type: ignore[attr-defined]


def test_no_error_about_an_error_nor_to_multicast_source_and_rate_limited() -> None:
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    inner = IPv6(src=STACK_IP6, dst=PEER_IP6) / UDP()
    err = IPv6(src=PEER_IP6, dst=STACK_IP6, nh=253) / (b"x" * 8)
    stack.receive(iface, to_stack(IPv6(src=PEER_IP6, dst=STACK_IP6) / IPv6ExtHdrDestOpt(
        options=[HBHOptUnknown(otype=0x9E, optdata=b"z")]) / ICMPv6DestUnreach() / inner), 11.0)
    assert param_problem(iface) is None and stack.stats["icmp6.error_suppressed.about_error"] == 1
    for _ in range(200):
        stack.receive(iface, to_stack(err), 12.0)
    assert len(sent(iface)) == 50  # net.ipv4.icmp_msgs_burst, shared with ICMPv4 as Linux does
    assert stack.stats["icmp6.error_suppressed.ratelimit"] == 150


# -- fragments ----------------------------------------------------------------------------------------


def frags(size: int, ident: int = 0x1234, fragsize: int = 600) -> list[bytes]:
    pkt = IPv6(src=PEER_IP6, dst=STACK_IP6) / IPv6ExtHdrFragment(id=ident) / UDP(sport=5000, dport=4000) / (
        bytes(range(256)) * (size // 256 + 1))[:size]
    return [to_stack(f) for f in fragment6(pkt, fragsize)]


def test_reassembly_in_any_order() -> None:
    stack, iface = make_stack6()
    sock = bound(stack)
    parts = frags(3000)
    assert len(parts) > 4
    for raw in reversed(parts):
        stack.receive(iface, raw, 11.0)
    data, _ = sock.recvfrom(65535, 11.0)  # type: ignore[attr-defined]
    assert data == (bytes(range(256)) * 12)[:3000]
    assert stack.stats["ip6.reasm.ok"] == 1 and len(stack.ip6.reassembler) == 0


def test_duplicate_fragment_is_ignored_overlap_kills_the_packet() -> None:
    stack, iface = make_stack6()
    sock = bound(stack)
    parts = frags(3000)
    stack.receive(iface, parts[0], 11.0)
    stack.receive(iface, parts[0], 11.0)
    assert stack.stats["ip6.reasm.duplicate"] == 1
    # An overlapping fragment: the same offset as part 1 but shorter (RFC 5722: drop everything).
    p = Ether(parts[1])
    p[IPv6ExtHdrFragment].payload = p[IPv6ExtHdrFragment].payload.__class__(bytes(p[IPv6ExtHdrFragment].payload)[:64])
    del p[IPv6].plen
    stack.receive(iface, bytes(p), 11.0)
    for raw in parts[1:]:
        stack.receive(iface, raw, 11.0)
    assert sock.poll_mask() & 1 == 0  # type: ignore[attr-defined]
    assert stack.stats["ip6.reasm.drop.overlap"] == 1
    assert stack.stats["ip6.reasm.drop.after_overlap"] == len(parts) - 2  # all after parts[1]


def test_atomic_fragment_is_processed_alone() -> None:
    stack, iface = make_stack6()
    sock = bound(stack)
    stack.receive(iface, udp_to_stack(IPv6ExtHdrFragment(id=77, offset=0, m=0)), 11.0)
    assert sock.recvfrom(100, 11.0)[0] == b"hello"  # type: ignore[attr-defined]
    assert stack.stats["ip6.rx.atomic_fragment"] == 1 and len(stack.ip6.reassembler.queues) == 0


def test_reassembly_timeout_sends_time_exceeded_only_with_the_first_fragment() -> None:
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    parts = frags(3000)
    stack.receive(iface, parts[0], 11.0)
    stack.receive(iface, parts[2], 11.0)
    others = frags(3000, ident=99)
    stack.receive(iface, others[1], 11.0)  # no first fragment: no error for this one
    run_until(stack, 69.0)
    learn_peer(stack, iface, now=70.0)
    run_until(stack, 71.5)
    errors = [f for f in sent(iface) if f.haslayer(ICMPv6TimeExceeded)]
    assert len(errors) == 1 and errors[0][ICMPv6TimeExceeded].code == 1
    assert bytes(errors[0][ICMPv6TimeExceeded].payload)[:40] == bytes(Ether(parts[0])[IPv6])[:40]
    assert stack.stats["ip6.reasm.drop.timeout"] == 2


def test_fragment_not_multiple_of_8_gets_parameter_problem() -> None:
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    stack.receive(iface, udp_to_stack(IPv6ExtHdrFragment(id=5, offset=0, m=1)), 11.0)  # 8 + 5 octets
    pp = param_problem(iface)
    assert pp is not None and (pp.code, pp.ptr) == (0, 4)


def test_reassembly_memory_is_bounded() -> None:
    stack, iface = make_stack6()
    stack.sysctl["net.ipv6.ip6frag_high_thresh"] = 20000
    stack.sysctl["net.ipv6.ip6frag_low_thresh"] = 10000
    for ident in range(100):
        stack.receive(iface, frags(3000, ident=ident)[0], 11.0)
    assert stack.ip6.reassembler.memory <= 20000
    assert stack.stats["ip6.reasm.drop.memory"] > 0


def test_large_datagram_leaves_in_fragments_scapy_reassembles() -> None:
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    sock = stack.socket(AF_INET6, SOCK_DGRAM)
    payload = bytes(range(256)) * 40
    sock.sendto(payload, (PEER_IP6, 9), 11.0)
    frames = sent(iface)
    assert len(frames) == 8 and all(len(bytes(f)) <= 1514 for f in frames)
    idents = {f[IPv6ExtHdrFragment].id for f in frames}
    assert len(idents) == 1
    whole = IPv6(bytes(defragment6([f[IPv6] for f in frames])))
    assert bytes(whole[UDP].payload) == payload
    sock.sendto(payload, (PEER_IP6, 9), 11.0)
    assert {f[IPv6ExtHdrFragment].id for f in sent(iface)} != idents  # RFC 7739: not sequential


def test_packet_too_big_lowers_the_path_mtu_never_below_1280() -> None:
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    sock = stack.socket(AF_INET6, SOCK_DGRAM)
    sock.sendto(b"x" * 1400, (PEER_IP6, 9), 11.0)
    (orig,) = sent(iface)
    ptb = IPv6(src=PEER_IP6, dst=STACK_IP6) / ICMPv6PacketTooBig(mtu=1000) / bytes(orig[IPv6])[:1232]
    stack.receive(iface, to_stack(ptb), 12.0)
    assert stack.path_mtu(packed(PEER_IP6)) == 1280
    sock.sendto(b"x" * 1400, (PEER_IP6, 9), 12.0)
    frames = sent(iface)
    assert len(frames) == 2 and max(len(bytes(f[IPv6])) for f in frames) <= 1280
    run_until(stack, 12.0 + 601)
    assert stack.path_mtu(packed(PEER_IP6)) == 1500


# -- UDP errors, MLD queries, source selection ----------------------------------------------------------


def test_closed_port_gets_port_unreachable_and_connected_socket_sees_econnrefused() -> None:
    stack, iface = make_stack6()
    learn_peer(stack, iface)
    stack.receive(iface, udp_to_stack(dport=4444), 11.0)
    (err,) = sent(iface)
    assert err[ICMPv6DestUnreach].code == 4 and err[IPv6].src == STACK_IP6
    sock = stack.socket(AF_INET6, SOCK_DGRAM)
    sock.connect((PEER_IP6, 7000), 12.0)
    sock.send = None  # type: ignore[attr-defined]
    sock.sendto(b"hi", None, 12.0)
    (out,) = sent(iface)
    unreach = IPv6(src=PEER_IP6, dst=STACK_IP6) / ICMPv6DestUnreach(code=4) / out[IPv6]
    stack.receive(iface, to_stack(unreach), 12.5)
    with pytest.raises(OSError) as exc:
        sock.recvfrom(100, 13.0)
    assert exc.value.errno == errno.ECONNREFUSED


def test_mld_queries_are_answered() -> None:
    stack, iface = make_stack6()
    q = IPv6(src=PEER_LL, dst="ff02::1", hlim=1) / IPv6ExtHdrHopByHop() / ICMPv6MLQuery2(mrd=2000)
    stack.receive(iface, to_stack(q, "33:33:00:00:00:01"), 10.0)
    assert sent(iface) == []
    run_until(stack, 12.1)
    (report,) = sent(iface)
    recs = report[ICMPv6MLReport2]
    assert report[IPv6].src == STACK_LL and recs.records_number == 1
    assert (recs.records[0].rtype, recs.records[0].dst) == (2, "ff02::1:ff00:2")
    q = IPv6(src=PEER_LL, dst="ff02::1:ff00:2", hlim=1) / ICMPv6MLQuery2(mladdr="ff02::1:ff00:2", mrd=100)
    stack.receive(iface, to_stack(q, "33:33:ff:00:00:02"), 20.0)
    run_until(stack, 20.2)
    (report,) = sent(iface)
    assert report[ICMPv6MLReport2].records[0].dst == "ff02::1:ff00:2"


def test_source_selection_rfc6724() -> None:
    stack, iface = make_stack6(slaac=True)
    stack.receive(iface, ra(prefix="2001:db8:1::"), 10.0)
    run_until(stack, 15.0)
    assert stack.select_source(packed("fe80::99")) == packed(STACK_LL)  # rule 2: scope
    assert stack.select_source(packed("fd00:77::99")) == packed(STACK_IP6)  # rule 8: longest match
    assert stack.select_source(packed("2001:db8:1::99")) == packed("2001:db8:1::ff:fe00:2")
    assert stack.select_source(packed(STACK_IP6)) == packed(STACK_IP6)  # rule 1
    assert stack.select_source(packed("::1")) == packed("::1")
