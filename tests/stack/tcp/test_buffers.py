"""The receive buffer: in-order bytes kept as views of their frames, read back intact whatever the mix."""

from __future__ import annotations

import hashlib
import itertools
import random

from pytcp_green.stack.tcp.buffers import ReceiveBuffer


def _frame(payload: bytes, header: int = 54) -> memoryview:
    """``payload`` as TCP sees it: a slice of an immutable received frame."""
    return memoryview(bytes(header) + payload)[header:]


def test_large_payload_is_kept_as_a_view_of_its_frame() -> None:
    buf = ReceiveBuffer()
    payload = _frame(bytes(range(256)) * 6)
    buf.add(0, payload, 0)
    assert buf.chunks[0].obj is payload.obj  # not copied on the way in
    assert buf.read(10_000) == bytes(range(256)) * 6
    assert buf.size == 0 and not buf.chunks


def test_small_payloads_share_one_tail() -> None:
    buf = ReceiveBuffer()
    rcv = 0
    for i in range(100):
        rcv = buf.add(rcv, _frame(bytes([i]) * 10), rcv)
    assert len(buf.chunks) == 1 and buf.size == 1000
    assert buf.read(1000) == b"".join(bytes([i]) * 10 for i in range(100))


def test_random_segments_and_reads_give_back_the_stream() -> None:
    rng = random.Random(7)
    stream = rng.randbytes(300_000)
    # Segments of mixed sizes, some out of order, some duplicated, some from a bytearray (copied).
    cuts = sorted({0, len(stream), *(rng.randrange(len(stream)) for _ in range(400))})
    segments = [(a, stream[a:b]) for a, b in itertools.pairwise(cuts)]
    order = segments[:]
    for i in range(0, len(order) - 3, 5):
        order[i], order[i + 2] = order[i + 2], order[i]
    order += rng.sample(segments, 20)
    buf = ReceiveBuffer()
    rcv = 0
    out = hashlib.sha256()
    got = 0
    for n, (seq, data) in enumerate(order):
        if seq + len(data) <= rcv:
            continue  # already received: TCP trims these before the buffer sees them
        if seq < rcv:
            data, seq = data[rcv - seq:], rcv
        view = memoryview(bytearray(data)) if n % 7 == 0 else _frame(data)
        rcv = buf.add(seq, view, rcv)
        assert buf.peek(64) == stream[got:got + min(64, buf.size)]
        want = rng.choice((1, 100, 1448, 5000, 70_000))
        if n % 2:
            piece = buf.read(want)
        else:
            dest = bytearray(want)
            k = buf.read_into(memoryview(dest), want)
            piece = bytes(dest[:k])
        out.update(piece)
        got += len(piece)
    while buf.size:
        piece = buf.read(4096)
        out.update(piece)
        got += len(piece)
    assert rcv == len(stream) == got
    assert out.hexdigest() == hashlib.sha256(stream).hexdigest()
    assert not buf.chunks and not buf.blocks and buf.ooo_bytes == 0
