"""MLDv1 compatibility (RFC 3810 §8.2.1, RFC 2710 §4): queries, reports and dones built and read by scapy."""

from __future__ import annotations

import ipaddress

from scapy.layers.inet6 import (
    ICMPv6MLDone,
    ICMPv6MLQuery,
    ICMPv6MLQuery2,
    ICMPv6MLReport,
    ICMPv6MLReport2,
    IPv6,
    IPv6ExtHdrHopByHop,
    RouterAlert,
)
from scapy.layers.l2 import Ether

from pytcp_green.stack.interface import Interface
from pytcp_green.stack.stack import Stack

from ..helpers import sent
from .helpers import PEER_LL, STACK_LL, make_stack6, run_until, to_stack

SOLICITED = "ff02::1:ff00:2"  # the solicited-node group of both STACK_LL and STACK_IP6
TIMEOUT = 2 * 125.0 + 10.0  # RFC 3810 §9.12 with the §9.1-§9.3 defaults


def _v1_query(stack: Stack, iface: Interface, now: float, group: str = "::", mrd: int = 1000) -> None:
    dst = "ff02::1" if group == "::" else group
    q = IPv6(src=PEER_LL, dst=dst, hlim=1) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / ICMPv6MLQuery(
        mladdr=group, mrd=mrd)
    mac = "33:33:" + ":".join(f"{b:02x}" for b in ipaddress.IPv6Address(dst).packed[-4:])
    stack.receive(iface, to_stack(q, mac), now)


def _v2_query(stack: Stack, iface: Interface, now: float, mrd: int = 1000) -> None:
    q = IPv6(src=PEER_LL, dst="ff02::1", hlim=1) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / ICMPv6MLQuery2(
        mrd=mrd)
    stack.receive(iface, to_stack(q, "33:33:00:00:00:01"), now)


def _mld(iface: Interface) -> list[Ether]:
    return [f for f in sent(iface) if f.haslayer(ICMPv6MLReport) or f.haslayer(ICMPv6MLDone)
            or f.haslayer(ICMPv6MLReport2)]


def _is_v1_report(frame: Ether, group: str) -> bool:
    ip = frame[IPv6]
    return (frame.haslayer(ICMPv6MLReport) and frame[ICMPv6MLReport].mladdr == group and ip.dst == group
            and ip.src == STACK_LL and ip.hlim == 1 and frame.haslayer(IPv6ExtHdrHopByHop)
            and frame[Ether].dst == "33:33:" + ":".join(f"{b:02x}" for b in ipaddress.IPv6Address(group).packed[-4:]))


def test_v1_general_query_is_answered_with_a_v1_report_within_the_delay() -> None:
    stack, iface = make_stack6()
    _v1_query(stack, iface, 10.0, mrd=2000)
    assert _mld(iface) == []  # RFC 2710 §4: after a random delay, not at once
    run_until(stack, 12.0)
    (report,) = _mld(iface)
    assert _is_v1_report(report, SOLICITED)
    assert stack.ip6.mld.v1_mode(stack.ip6.ifs[iface])


def test_v1_specific_query_and_v2_query_in_v1_mode_get_v1_reports() -> None:
    stack, iface = make_stack6()
    _v1_query(stack, iface, 10.0, group=SOLICITED, mrd=500)
    run_until(stack, 10.5)
    (report,) = _mld(iface)
    assert _is_v1_report(report, SOLICITED)
    _v2_query(stack, iface, 20.0)  # still in MLDv1 mode: answered the MLDv1 way (§8.2.1)
    run_until(stack, 21.0)
    (report,) = _mld(iface)
    assert _is_v1_report(report, SOLICITED)


def test_join_and_leave_in_v1_mode_send_v1_report_and_done() -> None:
    stack, iface = make_stack6()
    _v1_query(stack, iface, 10.0, mrd=100)
    run_until(stack, 10.1)
    _mld(iface)
    group = "ff02::1:ff00:99"
    addr = stack.ip6.add_address(iface, ipaddress.IPv6Interface("fd00:77::99/64"), now=11.0, dad=False)
    first = _mld(iface)
    assert len(first) == 1 and _is_v1_report(first[0], group)
    run_until(stack, 11.0 + 10.0)  # robustness 2: one repetition within the Unsolicited Report Interval
    (again,) = _mld(iface)
    assert _is_v1_report(again, group)
    stack.ip6.remove_address(addr, 30.0)
    (done,) = _mld(iface)
    assert done.haslayer(ICMPv6MLDone) and done[ICMPv6MLDone].mladdr == group
    assert done[IPv6].dst == "ff02::2" and done[IPv6].hlim == 1 and done.haslayer(IPv6ExtHdrHopByHop)
    assert not any(f.haslayer(ICMPv6MLReport2) for f in [*first, again, done])


def test_another_listeners_v1_report_suppresses_ours() -> None:
    stack, iface = make_stack6()
    _v1_query(stack, iface, 10.0, mrd=10000)
    other = IPv6(src="fe80::3", dst=SOLICITED, hlim=1) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / ICMPv6MLReport(
        mladdr=SOLICITED)
    stack.receive(iface, to_stack(other, "33:33:ff:00:00:02"), 10.0)
    run_until(stack, 21.0)
    assert _mld(iface) == []
    assert stack.stats["mld.v1.report_suppressed"] == 1


def test_entering_v1_mode_cancels_a_pending_v2_answer() -> None:
    stack, iface = make_stack6()
    _v2_query(stack, iface, 10.0, mrd=10000)
    _v1_query(stack, iface, 10.0, mrd=1000)
    run_until(stack, 21.0)
    frames = _mld(iface)
    assert len(frames) == 1 and _is_v1_report(frames[0], SOLICITED)


def test_back_to_v2_when_the_older_querier_timer_runs_out_and_each_v1_query_rearms_it() -> None:
    stack, iface = make_stack6()
    if6 = stack.ip6.ifs[iface]
    _v1_query(stack, iface, 10.0, mrd=100)
    _v1_query(stack, iface, 200.0, mrd=100)  # re-arms: v1 until 200 + TIMEOUT
    run_until(stack, 10.0 + TIMEOUT + 1.0)
    assert stack.ip6.mld.v1_mode(if6)
    _mld(iface)
    run_until(stack, 200.0 + TIMEOUT + 0.5)
    assert not stack.ip6.mld.v1_mode(if6)
    _v2_query(stack, iface, 500.0)
    run_until(stack, 501.0)
    (report,) = _mld(iface)
    assert report.haslayer(ICMPv6MLReport2) and report[ICMPv6MLReport2].records[0].dst == SOLICITED


def test_force_mld_version() -> None:
    stack, iface = make_stack6()
    stack.sysctl["net.ipv6.conf.default.force_mld_version"] = 2  # MLDv1 queries ignored
    _v1_query(stack, iface, 10.0, mrd=100)
    run_until(stack, 11.0)
    assert _mld(iface) == [] and stack.stats["mld.rx.query_v1_ignored"] == 1
    stack.sysctl["net.ipv6.conf.default.force_mld_version"] = 1  # MLDv1 always, even to an MLDv2 query
    _v2_query(stack, iface, 20.0)
    run_until(stack, 21.0)
    (report,) = _mld(iface)
    assert _is_v1_report(report, SOLICITED)


def test_malformed_v1_traffic_never_escapes_receive() -> None:
    stack, iface = make_stack6()
    short = IPv6(src=PEER_LL, dst="ff02::1", hlim=1) / ICMPv6MLQuery(mrd=100)
    raw = bytes(to_stack(short, "33:33:00:00:00:01"))
    for cut in range(14 + 40, len(raw)):
        stack.receive(iface, raw[:cut], 10.0)
    bad_len = IPv6(src=PEER_LL, dst=SOLICITED, hlim=1) / ICMPv6MLReport(mladdr=SOLICITED)
    stack.receive(iface, to_stack(bad_len, "33:33:ff:00:00:02")[:-4], 10.0)
    assert stack.stats["stack.drop.internal_error"] == 0
