"""The seeded throughput table (pytcp_green.sim.throughput) against its snapshot, and fairness on a bottleneck.

The table is regenerated in virtual time from seed 1, so it is the same on every machine; when
behaviour changes (recovery, congestion control) the test fails with the diff, and
``PYTCP_GREEN_UPDATE_SNAPSHOT=1`` rewrites ``throughput_snapshot.txt`` for review in the commit.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from pytcp_green.sim.bottleneck import throttle
from pytcp_green.sim.network import Simulation
from pytcp_green.sim.throughput import CCS, share, table

from .fakes import FakeStack

SNAPSHOT = Path(__file__).with_name("throughput_snapshot.txt")


def test_throughput_table_matches_the_snapshot() -> None:
    now = table()
    if os.environ.get("PYTCP_GREEN_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(now)
    old = SNAPSHOT.read_text()
    diff = "".join(difflib.unified_diff(old.splitlines(True), now.splitlines(True), str(SNAPSHOT), "regenerated"))
    assert not diff, f"the throughput table changed (PYTCP_GREEN_UPDATE_SNAPSHOT=1 rewrites it):\n{diff}"


@pytest.mark.parametrize("cc", CCS)
def test_two_flows_share_a_bottleneck_within_20_percent(cc: str) -> None:
    # 60 s (3,000 RTTs): reno's AIMD converges slowly on a drop-tail queue (0.72-0.77 after 20 s, 0.86 after 60).
    first, second = share(cc)
    assert min(first, second) >= 0.8 * max(first, second), (cc, first, second)
    # Together they keep the 2 Mbit/s link busy over the 60 s measured (headers take the rest).
    assert (first + second) * 8 / 60 > 0.9 * 2e6 * 1448 / 1514, (first, second)


def test_bottleneck_serializes_queues_and_tail_drops() -> None:
    sim = Simulation(seed=1)
    a, b = FakeStack("a"), FakeStack("b")
    link = sim.connect(a, "eth0", b, "eth0", latency=0.005)
    stage = throttle(link.ab, 1e6, buffer=2)
    for i in range(4):
        a.send_now(bytes([i]) * 1250)  # 10 ms each on a 1 Mbit/s link
    sim.run()
    # Two queue slots: frames 0 and 1 wait and leave at 10 and 20 ms; 2 and 3 found the queue full.
    assert [(round(t - 1000.0, 6), f[0]) for t, _, f in b.received] == [(0.015, 0), (0.025, 1)]
    assert stage.stats["overflow"] == 2 and stage.stats["queue_max"] == 2
    assert link.ab.stats["overflow"] == 2
