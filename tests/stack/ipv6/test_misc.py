"""IPv6 odds and ends: fuzzed receive never raises, ::1 inside the stack, the options' IPv6 fields."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6NDOptPrefixInfo,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
)

from pytcp_green.host import StackOptions
from pytcp_green.stack.interface import TrustedFrame
from pytcp_green.stack.sockbase import AF_INET6
from pytcp_green.stack.stack import SOCK_DGRAM, SOCK_STREAM, Stack
from pytcp_green.stack.tcp import TcpSocket

from .helpers import PEER_IP6, PEER_LL, STACK_IP6, make_stack6

SEEDS = [
    bytes(IPv6(src=PEER_IP6, dst=STACK_IP6) / UDP(dport=7) / b"x"),
    bytes(IPv6(src=PEER_IP6, dst=STACK_IP6) / ICMPv6EchoRequest()),
    bytes(IPv6(src=PEER_IP6, dst=STACK_IP6) / IPv6ExtHdrDestOpt() / IPv6ExtHdrFragment(m=1) / (b"y" * 16)),
    bytes(IPv6(src=PEER_LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA() / ICMPv6NDOptPrefixInfo(prefix="fd00:1::")),
    bytes(IPv6(src=PEER_IP6, dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=STACK_IP6)),
    bytes(IPv6(src=PEER_IP6, dst=STACK_IP6, hlim=255) / ICMPv6ND_NA(tgt=PEER_IP6)),
]

STACK, IFACE = make_stack6(slaac=True)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
       st.integers(0, 24))
def test_fuzzed_ipv6_never_escapes_receive(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    pkt = bytearray(seed)
    for pos, value in flips:
        if pos < len(pkt):
            pkt[pos] = value
    pkt = pkt[: max(len(pkt) - cut, 0)]
    frame = bytes.fromhex("333300000001" "020000000001" "86dd") + bytes(pkt)
    STACK.receive(IFACE, frame, 20.0)
    STACK.poll(20.0)
    IFACE.tx.clear()
    assert STACK.stats["stack.drop.internal_error"] == 0
    assert STACK.stats["stack.timer_error"] == 0


def test_the_fuzz_reaches_the_ipv6_layer() -> None:
    assert STACK.stats["ip6.rx"] > 0


def test_udp_and_tcp_over_the_loopback_address() -> None:
    stack = Stack(seed=5)
    server = stack.socket(AF_INET6, SOCK_DGRAM)
    server.bind(("::1", 5353))
    client = stack.socket(AF_INET6, SOCK_DGRAM)
    client.sendto(b"ping", ("::1", 5353), 1.0)
    for frame in list(stack.loopback.tx):
        stack.loopback.tx.popleft()
        stack.receive(stack.loopback, frame, 1.0)
    data, source = server.recvfrom(100, 1.0)
    assert data == b"ping" and source[0] == "::1"
    listener = stack.socket(AF_INET6, SOCK_STREAM)
    assert isinstance(listener, TcpSocket)
    listener.bind(("::1", 80))
    listener.listen(1)
    conn = stack.socket(AF_INET6, SOCK_STREAM)
    assert isinstance(conn, TcpSocket)
    with contextlib.suppress(BlockingIOError):
        conn.connect(("::1", 80), 1.0)
    for _ in range(20):
        while stack.loopback.tx:
            # As the loopback device hands them back: the stack's own frames, TCP's checksum unwritten.
            stack.receive(stack.loopback, TrustedFrame(stack.loopback.tx.popleft()), 1.0)
    _accepted, peer = listener.accept(1.0)
    assert peer[0] == "::1" and conn.state == "ESTABLISHED"


def test_options_ip6_fields_validate_and_round_trip_through_the_environment() -> None:
    opts = StackOptions(lab=True, ip6=["fd00:77::5/64", "2001:db8::5/64"], gateway6="fe80::1", slaac=False)
    opts.validate()
    again = StackOptions.from_env(opts.to_env())
    assert (again.ip6, again.gateway6, again.slaac) == (opts.ip6, opts.gateway6, False)
    assert StackOptions.from_env({}).slaac is None
    with pytest.raises(ValueError, match="--ip6"):
        StackOptions(ip6=["fd00::5"]).validate()
    with pytest.raises(ValueError, match="--ip6"):
        StackOptions(ip6=["198.18.0.1/24"]).validate()
    with pytest.raises(ValueError, match="--gateway6"):
        StackOptions(gateway6="nope").validate()
    StackOptions(tap="tap9").validate()  # IPv6-only by SLAAC is a valid configuration
    with pytest.raises(ValueError):
        StackOptions(tap="tap9", slaac=False).validate()


def test_cli_parses_ip6_options() -> None:
    from pytcp_green.cli import build_parser, options_from_args

    args = build_parser().parse_args(["serve", "--lab", "--ip6", "fd00:77::9/64", "--ip6", "fd00:1::9/64",
                                      "--gateway6", "fd00:77::1", "--no-slaac"])
    opts = options_from_args(args)
    assert opts.ip6 == ["fd00:77::9/64", "fd00:1::9/64"] and opts.gateway6 == "fd00:77::1" and opts.slaac is False
    assert options_from_args(build_parser().parse_args(["serve", "--lab"])).slaac is None
