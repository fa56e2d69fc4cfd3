"""HyStart++ (RFC 9406) in both congestion control modules, in virtual time: a sender that is always
window-limited behind a bottleneck whose queue grows once the window passes the path's capacity, so
the RTT rises the way a real queue makes it rise; then two stacks in the simulator through a
rate-limited link with a finite queue.  Slow start leaves through Conservative Slow Start
on that rise, well before a loss; with HyStart++ switched off it doubles on until the (absent) loss."""

from __future__ import annotations

import itertools

import pytest

from pytcp_green.stack.tcp.cc import create, switch
from pytcp_green.stack.tcp.cc.base import INITIAL_SSTHRESH, CongestionControl
from pytcp_green.stack.tcp.cc.hystart import CSS_ROUNDS

from .scenario import Scenario
from .scenario import run as run_scenario

MSS = 1448
BASE_RTT = 0.040
RATE = 1000  # bottleneck, segments per second: the pipe holds BASE_RTT * RATE = 40 segments


def path_rtt(inflight_segments: float) -> float:
    """What a drop-tail bottleneck gives: the base RTT plus the queue's drain time."""
    return BASE_RTT + max(0.0, inflight_segments - BASE_RTT * RATE) / RATE


def run(cc: CongestionControl, rounds: int, rtt_of: object = path_rtt) -> tuple[list[float], list[int]]:
    """``rounds`` round trips; one ACK (and RTT sample) per segment.  Returns cwnd (segments) at the
    start of each round and the rounds (0-based) in which on_rtt reported the end of slow start."""
    now, snd_una, snd_max = 0.0, 0, 0
    cwnds, exits = [], []
    for r in range(rounds):
        window = cc.cwnd
        cwnds.append(window / MSS)
        snd_max = snd_una + window  # the whole window leaves at the start of the round
        rtt = rtt_of(window / MSS)  # type: ignore[operator]
        for _ in range(window // MSS):
            snd_una += MSS
            flight = snd_max - snd_una + MSS
            if cc.on_rtt(rtt, snd_una, snd_max, now):
                exits.append(r)
            cc.on_ack(MSS, MSS, max(flight, cc.cwnd), now)
        now += rtt
    return cwnds, exits


@pytest.mark.parametrize("name", ["cubic", "reno"])
def test_slow_start_exits_on_the_rtt_rise_through_css(name: str) -> None:
    cc = create(name, MSS)
    cwnds, exits = run(cc, 12)
    assert len(exits) == 1  # counted once (tcp.hystart_exit)
    assert cc.ssthresh < INITIAL_SSTHRESH  # congestion avoidance without any loss
    # Doubling until the queue builds (the window passes 40 segments: 10, 20, 40, 80; the round of 80
    # sees the RTT doubled), then CSS's quarter-rate growth (x1.25 a round) for CSS_ROUNDS rounds, then
    # congestion avoidance from ssthresh = cwnd.
    assert cwnds[:4] == [10, 20, 40, 80]
    assert exits == [3 + CSS_ROUNDS - 1]
    css = cwnds[4:3 + CSS_ROUNDS]
    assert all(b / a == pytest.approx(1.25, abs=0.01) for a, b in itertools.pairwise(css))
    assert cc.ssthresh / MSS == pytest.approx(cwnds[3 + CSS_ROUNDS - 1], abs=0.01)
    assert cc.ssthresh < 3 * 80 * MSS


@pytest.mark.parametrize("name", ["cubic", "reno"])
def test_without_hystart_slow_start_keeps_doubling(name: str) -> None:
    cc = create(name, MSS)
    cc.hystart = None
    cwnds, exits = run(cc, 9)
    assert exits == [] and cc.ssthresh == INITIAL_SSTHRESH
    assert cwnds == [10 * 2 ** i for i in range(9)]


def test_a_short_lived_rise_returns_to_slow_start() -> None:
    """RFC 9406 §4.2: a CSS round whose minimum RTT falls below the baseline resumes slow start."""
    cc = create("cubic", MSS)
    bump = {3}  # round 3 alone sees a higher RTT
    rounds = iter(range(100))

    def rtt_of(_window: float) -> float:
        return BASE_RTT + (0.02 if next(rounds) in bump else 0.0)

    cwnds, exits = run(cc, 7, rtt_of)
    assert exits == [] and cc.ssthresh == INITIAL_SSTHRESH
    assert cwnds[-1] / cwnds[-2] == pytest.approx(2, rel=0.01)  # doubling again


@pytest.mark.parametrize("name", ["cubic", "reno"])
def test_a_loss_or_timeout_ends_the_search_for_the_connection(name: str) -> None:
    cc = create(name, MSS)
    cc.on_loss(20 * MSS, MSS, 0.0)
    assert cc.hystart is None
    cc = create(name, MSS)
    cc.on_timeout(20 * MSS, MSS, True, 0.0)
    assert cc.hystart is None
    assert switch(cc, "reno" if name == "cubic" else "cubic", MSS).hystart is None  # not restarted by a switch


# -- two stacks in the simulator, through a rate-limited bottleneck ----------------------------------------
BOTTLENECK = "rate=20mbit,limit=400"  # a 20 ms path holds about 35 segments; the queue 400 frames


def _bulk(monkeypatch: pytest.MonkeyPatch, hystart: bool, name: str) -> tuple[dict[str, int], int]:
    """Sender's counters and the frames the bottleneck's queue dropped, for 2 MB through it."""
    if not hystart:
        monkeypatch.setattr("pytcp_green.stack.tcp.cc.base.HyStart", lambda: None)
    cc = {"net.ipv4.tcp_congestion_control": name}
    outcome = run_scenario(Scenario(seed=1, spec_ab=BOTTLENECK, latency=0.010, a_sends=2_000_000, rcvbuf_b=8_000_000,
                           sysctl_a=cc, sysctl_b=cc))
    assert outcome.completed and outcome.b_got == outcome.a_expected
    return outcome.stats_a, outcome.link["ab"]["overflow"]


@pytest.mark.parametrize("name", ["cubic", "reno"])
def test_a_bulk_transfer_leaves_slow_start_on_delay_before_the_queue_overflows(
        monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    with_it, dropped = _bulk(monkeypatch, True, name)
    assert with_it["tcp.hystart_exit"] == 1 and with_it.get("tcp.retransmit", 0) == 0 and dropped == 0
    without, dropped = _bulk(monkeypatch, False, name)
    # Without it slow start doubles into the queue's limit: a burst of drops to recover from.
    assert without.get("tcp.hystart_exit", 0) == 0 and without["tcp.retransmit"] > 0 and dropped > 0
