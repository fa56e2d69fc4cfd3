"""ImpairSpec parsing and the Impairment model: exact timing arithmetic, each impairment's semantics, seeding."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytcp_green.link.impair import Impairment, ImpairSpec

# --- ImpairSpec.parse ---------------------------------------------------------------------------

VALID = [
    ("", ImpairSpec()),
    ("none", ImpairSpec()),
    (
        "loss=5%,delay=10ms,reorder=1%,dup=1%,corrupt=0.1%,rate=100mbit,seed=7",
        ImpairSpec(loss=0.05, delay=0.01, reorder=0.01, duplicate=0.01, corrupt=0.001, rate=100e6, seed=7),
    ),
    ("loss=0.05", ImpairSpec(loss=0.05)),
    ("loss=0", ImpairSpec()),
    ("loss=100%", ImpairSpec(loss=1.0)),
    ("duplicate=2%", ImpairSpec(duplicate=0.02)),
    (" LOSS = 5% , Delay = 2s ", ImpairSpec(loss=0.05, delay=2.0)),
    ("delay=250us,jitter=100ns", ImpairSpec(delay=250e-6, jitter=100e-9)),
    ("delay=1.5ms", ImpairSpec(delay=0.0015)),
    ("delay=.5s", ImpairSpec(delay=0.5)),
    ("jitter=1e-3s", ImpairSpec(jitter=0.001)),
    ("rate=0", ImpairSpec()),
    ("rate=56kbit", ImpairSpec(rate=56000.0)),
    ("rate=1.5GBIT", ImpairSpec(rate=1.5e9)),
    ("rate=9600bit", ImpairSpec(rate=9600.0)),
    ("limit=100", ImpairSpec(limit=100)),
    ("seed=0", ImpairSpec(seed=0)),
]


@pytest.mark.parametrize(("text", "spec"), VALID, ids=[t or "empty" for t, _ in VALID])
def test_parse_valid(text: str, spec: ImpairSpec) -> None:
    assert ImpairSpec.parse(text) == spec


INVALID = [
    ("loss", "not key=value"),
    ("loss=5%,", "empty item"),
    ("loss=5%,,dup=1%", "empty item"),
    ("drop=5%", "unknown key 'drop'"),
    ("loss=5%,loss=6%", "loss given twice"),
    ("dup=1%,duplicate=1%", "duplicate given twice"),
    ("loss=150%", "cannot exceed 100%"),
    ("loss=1.5", "cannot exceed 100%"),
    ("loss=-1%", "non-negative number"),
    ("loss=abc", "non-negative number"),
    ("loss=5ms", "fraction .* or percentage"),
    ("loss=nan", "non-negative number"),
    ("delay=10", "give a time unit"),
    ("delay=10min", "give a time unit"),
    ("delay=-1ms", "non-negative number"),
    ("jitter=inf", "non-negative number"),
    ("rate=100", "give a rate unit"),
    ("rate=10mbps", "give a rate unit"),
    ("rate=1kB", "give a rate unit"),
    ("seed=-3", "non-negative integer"),
    ("seed=1.5", "non-negative integer"),
    ("limit=ten", "non-negative integer"),
]


@pytest.mark.parametrize(("text", "message"), INVALID, ids=[t for t, _ in INVALID])
def test_parse_invalid(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImpairSpec.parse(text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"loss": 1.5},
        {"reorder": -0.1},
        {"corrupt": math.nan},
        {"delay": -1.0},
        {"rate": math.inf},
        {"limit": -1},
        {"seed": -1},
    ],
)
def test_spec_constructor_validates(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="impairment"):
        ImpairSpec(**kwargs)  # type: ignore[arg-type]


def test_str_is_canonical() -> None:
    spec = ImpairSpec.parse("seed=7,rate=100mbit,corrupt=0.1%,dup=1%,reorder=1%,delay=10ms,loss=5%")
    assert str(spec) == "loss=5%,dup=1%,reorder=1%,corrupt=0.1%,delay=10ms,rate=100mbit,seed=7"
    assert str(ImpairSpec()) == "none"
    assert str(ImpairSpec(loss=0.07, delay=0.0105, jitter=2.0, rate=1.5e9)) == (
        "loss=7%,delay=10.5ms,jitter=2s,rate=1.5gbit"
    )


probability = st.floats(min_value=0.0, max_value=1.0)
seconds = st.floats(min_value=0.0, max_value=1e6, allow_subnormal=False)


@given(
    loss=probability,
    duplicate=probability,
    reorder=probability,
    corrupt=probability,
    delay=seconds,
    jitter=seconds,
    rate=st.floats(min_value=0.0, max_value=1e15),
    limit=st.integers(min_value=0, max_value=10**6),
    seed=st.none() | st.integers(min_value=0, max_value=2**64),
)
def test_str_round_trips_exactly(
    loss: float,
    duplicate: float,
    reorder: float,
    corrupt: float,
    delay: float,
    jitter: float,
    rate: float,
    limit: int,
    seed: int | None,
) -> None:
    spec = ImpairSpec(loss, duplicate, reorder, corrupt, delay, jitter, rate, limit, seed)
    assert ImpairSpec.parse(str(spec)) == spec


def test_is_perfect() -> None:
    assert ImpairSpec().is_perfect
    assert ImpairSpec(seed=3).is_perfect
    assert not ImpairSpec(delay=0.001).is_perfect


# --- Impairment -----------------------------------------------------------------------------------

T0 = 1000.0


def frame(i: int, size: int = 100) -> bytes:
    return i.to_bytes(4, "big") + bytes(size - 4)


def index(f: bytes) -> int:
    return int.from_bytes(f[:4], "big")


def test_perfect_link_passes_at_once() -> None:
    imp = Impairment(ImpairSpec())
    assert imp.next_deadline() is None
    imp.push(b"a", T0)
    imp.push(bytearray(b"b"), T0)
    assert imp.next_deadline() == T0
    assert imp.pop_due(T0) == [b"a", b"b"]
    assert imp.next_deadline() is None
    assert imp.stats["passed"] == 2


def test_push_copies_the_frame() -> None:
    imp = Impairment(ImpairSpec(delay=1.0))
    buf = bytearray(b"original")
    imp.push(memoryview(buf), T0)
    buf[:] = b"clobbered"
    assert imp.pop_due(T0 + 1.0) == [b"original"]


def test_delay_is_exact() -> None:
    imp = Impairment(ImpairSpec(delay=0.010))
    imp.push(b"x", T0)
    imp.push(b"y", T0 + 0.003)
    assert imp.next_deadline() == T0 + 0.010
    assert imp.pop_due(math.nextafter(T0 + 0.010, 0)) == []  # not a hair early
    assert imp.pop_due(T0 + 0.010) == [b"x"]
    assert imp.next_deadline() == (T0 + 0.003) + 0.010
    assert imp.pop_due(T0 + 1) == [b"y"]


def test_rate_serializes_frames_exactly() -> None:
    rate = 1e6  # 1 Mbit/s: 1250 bytes take 10 ms
    imp = Impairment(ImpairSpec(rate=rate, delay=0.005))
    sizes = [1250, 125, 1250]
    for i, size in enumerate(sizes):
        imp.push(frame(i, size), T0)
    # A frame that arrives once the link is idle starts at its own push time.
    late = T0 + 1.0
    imp.push(frame(3, 1250), late)
    expected: list[float] = []
    done = T0
    for size in sizes:
        done = done + size * 8 / rate
        expected.append(done + 0.005)
    expected.append(late + 1250 * 8 / rate + 0.005)
    got = []
    while (t := imp.next_deadline()) is not None:
        got += [(t, index(f)) for f in imp.pop_due(t)]
    assert got == list(zip(expected, range(4), strict=True))


def test_jitter_stays_in_bounds_and_never_reorders() -> None:
    imp = Impairment(ImpairSpec(delay=0.050, jitter=0.020), seed=3)
    pushed = {}
    for i in range(2000):
        now = T0 + i * 0.001
        pushed[i] = now
        imp.push(frame(i), now)
    order: list[int] = []
    while (t := imp.next_deadline()) is not None:
        for f in imp.pop_due(t):
            i = index(f)
            order.append(i)
            # Clamped up to the previous frame's time, so only the upper bound is absolute.
            assert t <= pushed[i] + 0.050 + 0.020
            assert t >= pushed[i] + 0.050 - 0.020
    assert order == list(range(2000))


def test_reorder_holds_a_frame_behind_the_next_one() -> None:
    imp = Impairment(ImpairSpec(reorder=1.0, delay=0.001))
    imp.push(frame(0), T0)  # held
    assert imp.next_deadline() == T0 + 0.001 + imp.reorder_max_hold  # its fallback
    imp.push(frame(1), T0)  # also held: nothing overtakes anything yet
    assert imp.pending == 2
    assert imp.stats["reordered"] == 0


def test_reorder_depth_and_counting() -> None:
    spec = ImpairSpec(reorder=0.5, delay=0.001)
    imp = Impairment(spec, seed=11, reorder_depth=2)
    for i in range(4000):
        imp.push(frame(i), T0 + i * 0.001)
    out: list[int] = []
    while (t := imp.next_deadline()) is not None:
        out += [index(f) for f in imp.pop_due(t)]
    assert sorted(out) == list(range(4000))
    # "reordered" counts exactly the frames that arrive after a later-sent one.
    late, highest = 0, -1
    for i in out:
        if i < highest:
            late += 1
        highest = max(highest, i)
    assert late == imp.stats["reordered"]
    assert 0.4 * 4000 < late < 0.6 * 4000


def test_reorder_fallback_delivers_in_order_when_nothing_follows() -> None:
    imp = Impairment(ImpairSpec(reorder=1.0, delay=0.002), reorder_max_hold=0.004)
    imp.push(b"lonely", T0)
    assert imp.next_deadline() == (T0 + 0.002) + 0.004
    assert imp.pop_due(T0 + 0.005) == []
    assert imp.pop_due((T0 + 0.002) + 0.004) == [b"lonely"]
    assert imp.stats["reordered"] == 0
    assert imp.stats["passed"] == 1


def test_reordered_frame_goes_right_behind_its_overtaker() -> None:
    # Find a seed whose reorder stream holds the first frame and lets the second pass.
    for seed in range(100):
        imp = Impairment(ImpairSpec(reorder=0.5), seed=seed)
        imp.push(b"first", T0)
        held = imp.next_deadline() == T0 + imp.reorder_max_hold
        imp.push(b"second", T0 + 0.001)
        if held and imp.stats["reordered"] == 1:
            break
    else:  # pragma: no cover
        pytest.fail("no seed in range(100) held only the first frame")
    assert imp.pop_due(T0 + 0.001) == [b"second", b"first"]
    assert imp.next_deadline() is None


def test_duplicate_delivers_two_copies_back_to_back() -> None:
    imp = Impairment(ImpairSpec(duplicate=1.0, delay=0.001))
    imp.push(b"a", T0)
    imp.push(b"b", T0)
    assert imp.pop_due(T0 + 0.001) == [b"a", b"a", b"b", b"b"]
    assert imp.stats["duplicated"] == 2
    assert imp.stats["passed"] == 4


def test_loss_everything() -> None:
    imp = Impairment(ImpairSpec(loss=1.0))
    for i in range(10):
        imp.push(frame(i), T0)
    assert imp.pop_due(T0 + 10) == []
    assert imp.next_deadline() is None
    assert imp.stats["lost"] == 10


def test_corrupt_changes_exactly_one_byte_beyond_the_offset() -> None:
    imp = Impairment(ImpairSpec(corrupt=1.0), seed=5, corrupt_offset=14)
    originals = [bytes(range(60)) for _ in range(500)]
    for f in originals:
        imp.push(f, T0)
    out = imp.pop_due(T0)
    assert imp.stats["corrupted"] == 500
    positions = set()
    for orig, got in zip(originals, out, strict=True):
        diff = [k for k in range(60) if orig[k] != got[k]]
        assert len(diff) == 1
        positions.add(diff[0])
    assert min(positions) >= 14
    assert len(positions) > 30  # spread over the frame, not one fixed spot


def test_corrupt_leaves_frames_too_short_to_touch() -> None:
    imp = Impairment(ImpairSpec(corrupt=1.0), corrupt_offset=14)
    imp.push(bytes(14), T0)
    assert imp.pop_due(T0) == [bytes(14)]
    assert imp.stats["corrupted"] == 0


def test_limit_tail_drops() -> None:
    imp = Impairment(ImpairSpec(rate=8000.0, limit=3))  # 1 byte/ms
    for i in range(5):
        imp.push(frame(i, 10), T0)
    assert imp.stats["overflow"] == 2
    assert [index(f) for f in imp.pop_due(T0 + 1)] == [0, 1, 2]
    imp.push(frame(9, 10), T0 + 1)  # room again
    assert imp.pending == 1


def test_same_seed_same_outcome_and_streams_are_independent() -> None:
    def run(spec: ImpairSpec) -> tuple[list[tuple[float, bytes]], dict[str, int]]:
        imp = Impairment(spec)
        for i in range(3000):
            imp.push(frame(i), T0 + i * 0.0001)
        out: list[tuple[float, bytes]] = []
        while (t := imp.next_deadline()) is not None:
            out += [(t, f) for f in imp.pop_due(t)]
        return out, imp.stats

    spec = ImpairSpec(loss=0.1, duplicate=0.05, reorder=0.05, corrupt=0.05, delay=0.01, jitter=0.002, seed=9)
    assert run(spec) == run(spec)
    assert run(dataclasses.replace(spec, seed=10)) != run(spec)
    # Turning corruption off changes no loss decision: each impairment has its own stream.
    no_corrupt = dataclasses.replace(spec, corrupt=0.0)
    assert run(no_corrupt)[1]["lost"] == run(spec)[1]["lost"]


def test_seed_resolution() -> None:
    assert Impairment(ImpairSpec(seed=4)).seed == 4
    assert Impairment(ImpairSpec(seed=4), seed=8).seed == 8
    drawn = Impairment(ImpairSpec()).seed  # recorded so the run can be replayed
    assert isinstance(drawn, int)


def test_impairment_constructor_validates() -> None:
    with pytest.raises(ValueError):
        Impairment(ImpairSpec(), corrupt_offset=-1)
    with pytest.raises(ValueError):
        Impairment(ImpairSpec(), reorder_depth=0)
    with pytest.raises(ValueError):
        Impairment(ImpairSpec(), reorder_max_hold=-1.0)


def test_pair_seeds_inbound_from_outbound() -> None:
    """Both directions of a link replay from one seed: outbound the spec's, inbound seed + 1."""
    spec = ImpairSpec.parse("loss=30%,seed=41")
    out, inbound = Impairment.pair(spec)
    assert (out.seed, inbound.seed) == (41, 42)
    drawn, inbound_drawn = Impairment.pair(ImpairSpec.parse("loss=30%"))
    assert inbound_drawn.seed == drawn.seed + 1


# -- ecn=P%: CE marks (RFC 3168 §5), checked by scapy as an independent codec --------------------------


def _eth(packet: object) -> bytes:
    from scapy.layers.l2 import Ether

    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / packet)  # type: ignore[operator]


def test_ecn_marks_ect_packets_ce_and_fixes_the_ipv4_checksum() -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    imp = Impairment(ImpairSpec(ecn=1.0), seed=1)
    v4 = _eth(IP(src="198.18.0.1", dst="198.18.0.2", tos=0xB8 | 2) / TCP() / b"x")
    v6 = _eth(IPv6(src="fd00::1", dst="fd00::2", tc=0x20 | 1) / TCP() / b"y")
    bare = bytes(IP(src="198.18.0.1", dst="198.18.0.2", tos=1) / TCP())
    not_ect = _eth(IP(src="198.18.0.1", dst="198.18.0.2", tos=0xB8) / TCP())
    for f in (v4, v6, bare, not_ect):
        imp.push(f, 0.0)
    out4, out6, out_bare, out_plain = imp.pop_due(0.0)
    ip4 = Ether(out4)[IP]
    assert ip4.tos == 0xB8 | 3  # DSCP kept, CE set
    sent_chksum = ip4.chksum
    del ip4.chksum
    assert IP(bytes(ip4)).chksum == sent_chksum  # the header checksum was recomputed
    assert Ether(out6)[IPv6].tc == 0x20 | 3
    assert IP(out_bare).tos == 3
    assert out_plain == not_ect  # not ECN-capable: unmarked (and not dropped)
    assert imp.stats["ce_marked"] == 3
    assert imp.stats["lost"] == 0


def test_ecn_spec_round_trips_and_has_its_own_stream() -> None:
    spec = ImpairSpec.parse("ecn=5%,loss=1%,seed=3")
    assert spec.ecn == 0.05
    assert ImpairSpec.parse(str(spec)) == spec
    frames = [frame(i) for i in range(500)]
    lossy = Impairment(ImpairSpec(loss=0.1), seed=3)
    both = Impairment(ImpairSpec(loss=0.1, ecn=0.5), seed=3)
    for f in frames:
        lossy.push(f, 0.0)
        both.push(f, 0.0)
    assert [index(f) for f in lossy.pop_due(0.0)] == [index(f) for f in both.pop_due(0.0)]
