"""make_pair: an in-memory cable; each end has its own MAC, eventfd and receive queue."""

from __future__ import annotations

import random
import select
from collections.abc import Iterator

import pytest

from pytcp_green.link.pair import PairEnd, make_pair, random_mac
from pytcp_green.stack.interface import LinkKind


def readable(fd: int) -> bool:
    r, _, _ = select.select([fd], [], [], 0)
    return bool(r)


@pytest.fixture
def pair() -> Iterator[tuple[PairEnd, PairEnd]]:
    a, b = make_pair()
    yield a, b
    a.close()
    b.close()


def test_frames_cross_the_cable_in_order(pair: tuple[PairEnd, PairEnd]) -> None:
    a, b = pair
    frames = [i.to_bytes(2, "big") * 30 for i in range(100)]
    for f in frames:
        a.write(f)
    assert a.read_batch() == []  # nothing comes back on the sending end
    assert b.read_batch() == frames
    b.write(b"reply")
    assert a.read_batch() == [b"reply"]


def test_directions_are_independent(pair: tuple[PairEnd, PairEnd]) -> None:
    a, b = pair
    a.write(b"a1")
    b.write(b"b1")
    a.write(bytearray(b"a2"))
    b.write(memoryview(b"b2"))
    assert b.read_batch() == [b"a1", b"a2"]
    assert a.read_batch() == [b"b1", b"b2"]


def test_eventfd_per_end(pair: tuple[PairEnd, PairEnd]) -> None:
    a, b = pair
    assert a.fileno() != b.fileno()
    assert not readable(a.fileno()) and not readable(b.fileno())
    a.write(b"x")
    assert readable(b.fileno())
    assert not readable(a.fileno())
    assert b.read_batch(limit=1) == [b"x"]
    assert not readable(b.fileno())


def test_ethernet_ends_have_distinct_locally_administered_unicast_macs(pair: tuple[PairEnd, PairEnd]) -> None:
    a, b = pair
    assert a.kind is b.kind is LinkKind.ETHERNET
    assert a.mac is not None and b.mac is not None
    assert len(a.mac) == len(b.mac) == 6
    assert a.mac != b.mac
    for mac in (a.mac, b.mac):
        assert mac[0] & 0x02  # locally administered
        assert not mac[0] & 0x01  # unicast


def test_random_mac_bits_over_many_draws() -> None:
    rng = random.Random(1)
    for _ in range(1000):
        assert random_mac(rng)[0] & 0x03 == 0x02


def test_seeded_macs_are_reproducible() -> None:
    a1, b1 = make_pair(rng=random.Random(42))
    a2, b2 = make_pair(rng=random.Random(42))
    try:
        assert (a1.mac, b1.mac) == (a2.mac, b2.mac)
    finally:
        for end in (a1, b1, a2, b2):
            end.close()


def test_ip_pair_has_no_mac_and_keeps_mtu() -> None:
    a, b = make_pair(mtu=9000, kind=LinkKind.IP, names=("tun0", "tun1"))
    try:
        assert a.mac is None and b.mac is None
        assert a.mtu == b.mtu == 9000
        assert (a.name, b.name) == ("tun0", "tun1")
    finally:
        a.close()
        b.close()


def test_full_peer_queue_drops_and_counts_on_the_writer() -> None:
    a, b = make_pair(queue_limit=2)
    try:
        for i in range(5):
            a.write(bytes([i]))
        assert a.dropped == 3
        assert b.dropped == 0
        assert b.read_batch() == [b"\x00", b"\x01"]
    finally:
        a.close()
        b.close()


def test_default_cap_is_1000(pair: tuple[PairEnd, PairEnd]) -> None:
    a, b = pair
    for _ in range(1001):
        a.write(b"x")
    assert a.dropped == 1
    assert b.pending == 1000


def test_writes_to_a_closed_peer_are_dropped_and_closed_end_refuses() -> None:
    a, b = make_pair()
    b.close()
    a.write(b"into the void")
    assert a.dropped == 1
    with pytest.raises(OSError):
        b.write(b"x")
    b.close()  # idempotent
    a.close()
