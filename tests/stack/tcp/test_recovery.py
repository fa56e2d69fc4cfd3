"""Loss recovery between two stacks in virtual time: RACK's reordering window (RFC 8985 §6.2-6.3) and
PRR (RFC 6937), each shown by its counter and gone when its switch is off.

Same seeds, same losses: a difference between the runs is the feature's doing.
"""

from __future__ import annotations

import pytest

from .scenario import Outcome, Scenario, run

LOSSY = "loss=10%,seed=3"


def _transfer(**sysctl: int) -> Outcome:
    options = {"net.ipv4.tcp_sack": 1, **{k.replace("__", "."): v for k, v in sysctl.items()}}
    outcome = run(Scenario(seed=20_001, spec_ab=LOSSY, spec_ba="none", a_sends=1_000_000,
                           sysctl_a=options, sysctl_b=options, shutdown_a=True))
    assert outcome.completed and outcome.intact, outcome.describe()
    return outcome


@pytest.mark.parametrize("rack", [1, 0], ids=["rack", "no-rack"])
def test_rack_reorder_timeout_starts_recovery_only_when_on(rack: int) -> None:
    stats = _transfer(net__ipv4__tcp_recovery=rack).stats_a
    if rack:
        # Holes below fewer than DupThresh SACKs were declared lost once the window passed.
        assert stats["tcp.rack_lost"] > 0, stats
    else:
        assert not stats.get("tcp.rack_lost") and not stats.get("tcp.tlp"), stats


def test_rack_saves_timeouts() -> None:
    """With RACK the same losses cost fewer retransmission timeouts than with RFC 6675 alone."""
    on = _transfer(net__ipv4__tcp_recovery=1).stats_a
    off = _transfer(net__ipv4__tcp_recovery=0).stats_a
    assert on.get("tcp.rto", 0) < off.get("tcp.rto", 0), (on, off)


def test_prr_paces_sack_recovery() -> None:
    stats = _transfer().stats_a
    assert stats["tcp.fast_retransmit"] > 0 and stats["tcp.prr_sent"] > 0, stats


def test_no_recovery_without_loss() -> None:
    outcome = run(Scenario(seed=20_002, a_sends=400_000, shutdown_a=True))
    assert outcome.completed and outcome.intact, outcome.describe()
    for name in ("tcp.rack_lost", "tcp.prr_sent", "tcp.fast_retransmit", "tcp.rto"):
        assert not outcome.stats_a.get(name), outcome.stats_a
