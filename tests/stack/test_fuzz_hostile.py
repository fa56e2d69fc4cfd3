"""Issue 11, "How it is checked": a seeded fuzz of 10^5 frames from a hostile neighbour.

The stack (listeners, UDP and ping sockets, one established connection per family, IPv4 and
IPv6 with SLAAC) takes mutated frames with fixed checksums (pytcp_green/sim/fuzz.py) and must:
let no exception escape, keep every table under its limit at every checkpoint, be reached in
its deep layers (counters), and, once every socket is closed and an hour of virtual time has
passed, hold nothing a fresh stack built the same way does not hold.

The IPv6 address and router/prefix caps, the TCP orphan and TIME-WAIT caps and the redirect cache's
expiry are checked by tests of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from scapy.layers.l2 import Ether

from pytcp_green.sim.fuzz import Fuzzer, Target, build_target, fix_checksums, run_timers, tables
from pytcp_green.sim.fuzzcorpus import corpus
from pytcp_green.stack.stack import Stack

SEEDS = (1, 2)
FRAMES = 50_000  # per seed: 10^5 in all, about 5 s here
CHECKPOINT = 1_000
HOUR = 3600.0


@dataclass
class Run:
    target: Target
    peaks: dict[str, int] = field(default_factory=dict)
    checkpoints: list[dict[str, int]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)
    fresh: dict[str, int] = field(default_factory=dict)


def _fuzz(seed: int) -> Run:
    target = build_target(seed)
    fuzzer = Fuzzer(target, seed)
    run = Run(target)
    for _ in range(FRAMES // CHECKPOINT):
        fuzzer.run(CHECKPOINT)
        sizes = tables(target.stack)
        run.checkpoints.append(sizes)
        for name, value in sizes.items():
            run.peaks[name] = max(run.peaks.get(name, 0), value)
    run.stats = dict(target.stack.stats)
    target.close(fuzzer.now)
    run_timers(target.stack, fuzzer.now + HOUR, fuzzer.now)
    run.after = tables(target.stack)
    fresh = build_target(seed)
    fresh.close(10.0)
    run_timers(fresh.stack, fuzzer.now + HOUR, 10.0)
    run.fresh = tables(fresh.stack)
    return run


@pytest.fixture(scope="module", params=SEEDS)
def run(request: pytest.FixtureRequest) -> Run:
    return _fuzz(request.param)


def _limit(stack: Stack, name: str) -> int:
    return stack.sysctl.int(name)


def test_corpus_is_valid_for_scapy() -> None:
    """Every corpus frame survives the checksum fixup unchanged: the fixup computes what scapy wrote."""
    frames = corpus()
    for frame in [*frames.frames, frames.conn4, frames.conn6]:
        fixed = bytearray(frame)
        fix_checksums(fixed)
        assert bytes(fixed) == frame, Ether(frame).summary()  # the RAs' timers are within the fixup's bounds


def test_no_exception_escapes(run: Run) -> None:
    assert run.stats.get("stack.drop.internal_error", 0) == 0
    assert run.stats.get("stack.timer_error", 0) == 0


def test_reaches_the_deep_layers(run: Run) -> None:
    """Enough frames pass the checksums to exercise every protocol, not just the parsers' first checks."""
    s = run.stats
    for name in ("tcp.rx", "tcp.passive_open", "tcp.established", "tcp.rst_out.no_connection", "udp.rx",
                 "arp.rx.request", "arp.rx.reply", "arp.acd.conflict_kept_static", "icmp4.rx.echo_request",
                 "icmp6.rx.echo_request", "ip4.reasm.ok", "ip6.reasm.ok", "nd.rx.ns", "nd.rx.na", "nd.rx.ra",
                 "nd.rx.redirect", "ip6.slaac.address", "icmp4.rx.error.3.4", "icmp6.rx.error.2.0"):
        assert s.get(name, 0) > 0, name
    assert s.get("mld.rx.query", 0) + s.get("mld.rx.query_v1", 0) > 0
    assert s.get("igmp.rx.query_v2", 0) + s.get("igmp.rx.query_v3", 0) > 0
    assert s.get("tcp.rx", 0) > FRAMES // 10


def test_tables_stay_under_their_limits(run: Run) -> None:
    stack = run.target.stack
    for sizes in run.checkpoints:
        assert sizes["arp"] <= _limit(stack, "net.ipv4.neigh.default.gc_thresh3")
        assert sizes["nd"] <= _limit(stack, "net.ipv6.neigh.default.gc_thresh3")
        assert sizes["syn_queue"] <= _limit(stack, "net.ipv4.tcp_max_syn_backlog")
        assert sizes["accept_queue"] <= 128
        assert sizes["reasm4_bytes"] <= _limit(stack, "net.ipv4.ipfrag_high_thresh")
        assert sizes["reasm6_bytes"] <= _limit(stack, "net.ipv4.ipfrag_high_thresh")


def test_ipv6_tables_under_their_limits(run: Run) -> None:
    stack = run.target.stack
    for sizes in run.checkpoints:
        # + link-local + static: the cap counts SLAAC and temporary addresses beside them, as Linux's
        assert sizes["addresses6"] <= _limit(stack, "net.ipv6.conf.default.max_addresses")
        assert sizes["routers6"] <= _limit(stack, "net.ipv6.conf.default.ra_max_routers")
        assert sizes["prefixes6"] <= _limit(stack, "net.ipv6.conf.default.ra_max_prefixes") + 1  # + the static


def test_tcp_connections_under_their_limits(run: Run) -> None:
    stack = run.target.stack
    bound = (2 * _limit(stack, "net.ipv4.tcp_max_syn_backlog") + _limit(stack, "net.ipv4.tcp_max_orphans")
             + _limit(stack, "net.ipv4.tcp_max_tw_buckets") + 2)
    assert all(sizes["tcp_conns"] <= bound for sizes in run.checkpoints)


def _left(run: Run) -> dict[str, tuple[int, int]]:
    return {name: (value, run.fresh[name]) for name, value in run.after.items() if value > run.fresh[name]}


def test_an_hour_after_closing_nothing_is_left(run: Run) -> None:
    """Connections, neighbours, addresses, routers, prefixes, reassembly and timers: no more than a fresh stack's."""
    left = _left(run)
    left.pop("redirects6", None)  # the next test's
    assert left == {}, f"fuzzed vs fresh: {left}"


def test_an_hour_after_closing_no_redirect_is_left(run: Run) -> None:
    assert "redirects6" not in _left(run)
