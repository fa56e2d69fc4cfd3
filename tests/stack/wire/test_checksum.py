"""checksum.py against the naive RFC 1071 word sum."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytcp_green.stack.wire.checksum import checksum, is_valid, ones_sum, pseudo_sum

from .naive import naive_checksum, naive_ones_sum, naive_pseudo_header

FAST = settings(max_examples=400, deadline=None)


def test_rfc1071_example() -> None:
    # RFC 1071 §3 worked example: the words 0001 f203 f4f5 f6f7 sum to 0xddf2.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_sum(data) == 0xDDF2
    assert checksum(data) == 0x220D


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0),
        (b"\x00", 0),
        (b"\x00\x00\x00\x00", 0),
        (b"\xff\xff", 0xFFFF),
        (b"\xff\xff\xff\xff", 0xFFFF),  # a multiple of 0xFFFF that is not zero stays all ones
        (b"\x01", 0x0100),  # odd length: padded on the right
        (b"\x12\x34\x56", 0x1234 + 0x5600),
        (b"\x80\x00\x80\x00", 0x0001),  # end-around carry
    ],
)
def test_ones_sum_edges(data: bytes, expected: int) -> None:
    assert ones_sum(data) == expected == naive_ones_sum(data)


def test_accepts_every_buffer_type() -> None:
    data = bytes(range(1, 40))
    want = naive_ones_sum(data)
    assert ones_sum(data) == ones_sum(bytearray(data)) == ones_sum(memoryview(data)) == want
    # A slice of a bigger buffer, as the codecs pass them.
    big = memoryview(b"\xaa" * 7 + data + b"\x55" * 3)
    assert ones_sum(big[7 : 7 + len(data)]) == want


@FAST
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=(1 << 40)))
def test_ones_sum_matches_naive(data: bytes, initial: int) -> None:
    assert ones_sum(data, initial) == naive_ones_sum(data, initial)
    assert checksum(data, initial) == naive_checksum(data, initial)


@FAST
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=0x3FFFF))
def test_checksum_makes_data_valid(body: bytes, initial: int) -> None:
    # Place the checksum in a leading field (even offset) as every protocol does.
    csum = checksum(b"\x00\x00" + body, initial)
    assert is_valid(csum.to_bytes(2, "big") + body, initial)
    if any(body):
        # Any single-bit change in a non-trivial message must be caught.
        i = len(body) // 2
        flipped = body[:i] + bytes([body[i] ^ 0x10]) + body[i + 1 :]
        assert not is_valid(csum.to_bytes(2, "big") + flipped, initial)


@FAST
@given(
    st.sampled_from([4, 16]).flatmap(
        lambda n: st.tuples(st.binary(min_size=n, max_size=n), st.binary(min_size=n, max_size=n))
    ),
    st.sampled_from([1, 6, 17, 58]),
    st.binary(max_size=200),
)
def test_pseudo_sum_matches_pseudo_header_bytes(addrs: tuple[bytes, bytes], proto: int, data: bytes) -> None:
    src, dst = addrs
    length = len(data)
    want = naive_ones_sum(naive_pseudo_header(src, dst, proto, length) + data)
    assert ones_sum(data, pseudo_sum(src, dst, proto, length)) == want


def test_random_lengths_against_naive() -> None:
    # A plain seeded sweep over every length 0..600 so odd/even handling is covered exhaustively.
    rng = random.Random(1071)
    for n in range(601):
        data = rng.randbytes(n)
        initial = rng.choice([0, 1, 0xFFFF, 0x1FFFE, rng.getrandbits(33)])
        assert ones_sum(data, initial) == naive_ones_sum(data, initial), n
