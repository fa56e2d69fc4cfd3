"""Urgent data (RFC 9293 §3.8.5, RFC 6093) with the test playing the peer segment by segment: the
receive rules Linux follows (tcp_check_urg, tcp_urg, tcp_recvmsg, tcp_recv_urg), hostile pointers,
and what our segments carry after send(MSG_OOB) (tcp_mark_urg, tcp_transmit_skb), with and without
TSO; then any pointers and reads (a property), and two stacks exchanging urgent data under loss.  The
exchanges with the kernel are tests/kernel/test_urgent.py."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytcp_green.link.impair import ImpairSpec
from pytcp_green.sim.network import Simulation
from pytcp_green.stack.sockbase import AF_INET, POLLIN, POLLPRI
from pytcp_green.stack.stack import SOCK_STREAM
from pytcp_green.stack.tcp import TcpSocket
from pytcp_green.stack.wire.tcp import ACK, FIN, PSH, RST, URG, TcpSegment

from .host import Peer
from .scenario import IP_A, IP_B, make_host, payload
from .test_behaviour import data_segments, establish


def _open(**kwargs: int) -> tuple[Peer, TcpSocket]:
    peer = Peer(**kwargs)
    establish(peer)
    assert peer.sock is not None
    return peer, peer.sock


def _data(peer: Peer, data: bytes, urg: int = 0) -> None:
    """The peer's next bytes, with URG and the pointer ``urg`` when it is given."""
    peer.send(ACK | PSH | (URG if urg else 0), data=data, urg=urg)
    peer.seq += len(data)


def _errno(call: Callable[[], object]) -> int:
    with pytest.raises(OSError) as info:
        call()
    assert info.value.errno is not None
    return info.value.errno


# -- receiving ------------------------------------------------------------------------------------------

def test_the_byte_before_the_pointer_is_taken_out_of_the_stream_and_read_once_by_msg_oob() -> None:
    peer, sock = _open()
    _data(peer, b"abc")
    assert _errno(lambda: sock.recv_oob(1, peer.now)) == errno.EINVAL  # no urgent data yet
    _data(peer, b"!", urg=1)  # BSD pointer: the byte after the urgent one
    _data(peer, b"def")
    assert sock.poll_mask() & (POLLIN | POLLPRI) == POLLIN | POLLPRI
    assert sock.recv(100, peer.now) == b"abc"  # a read stops at the mark
    assert sock.recv_oob(1, peer.now, peek=True) == b"!"
    assert sock.recv_oob(1, peer.now) == b"!"
    assert not sock.poll_mask() & POLLPRI
    assert _errno(lambda: sock.recv_oob(1, peer.now)) == errno.EINVAL  # once only
    assert sock.recv(100, peer.now) == b"def"  # the urgent byte is not in the stream
    assert peer.host.stats["tcp.urg_recv"] == 1


def test_reading_past_the_mark_skips_the_byte_and_forgets_it() -> None:
    peer, sock = _open()
    _data(peer, b"abc!def", urg=4)
    assert sock.recv(100, peer.now, peek=True) == b"abc"
    assert sock.recv(100, peer.now) == b"abc"
    assert sock.recv(100, peer.now, peek=True) == b"def"
    assert sock.recv(100, peer.now) == b"def"
    assert not sock.poll_mask() & POLLPRI
    assert _errno(lambda: sock.recv_oob(1, peer.now)) == errno.EINVAL  # Linux: lost once read past


def test_the_urgent_byte_alone_is_not_readable() -> None:
    peer, sock = _open()
    _data(peer, b"!", urg=1)
    assert sock.poll_mask() & (POLLIN | POLLPRI) == POLLPRI
    with pytest.raises(BlockingIOError):
        sock.recv(100, peer.now)
    buf = bytearray(10)
    with pytest.raises(BlockingIOError):
        sock.recv_into(buf, 10, peer.now)
    _data(peer, b"xy")
    assert sock.recv_into(buf, 10, peer.now) == 2 and buf[:2] == b"xy"
    assert _errno(lambda: sock.recv_oob(1, peer.now)) == errno.EINVAL  # the skip forgot the byte (Linux)


def test_with_oobinline_the_byte_stays_in_the_stream_and_msg_oob_is_einval() -> None:
    peer, sock = _open()
    sock.oobinline = True
    _data(peer, b"abc!def", urg=4)
    assert sock.poll_mask() & POLLPRI  # Linux's tcp_poll reports it inline too
    assert _errno(lambda: sock.recv_oob(1, peer.now)) == errno.EINVAL
    assert sock.recv(100, peer.now) == b"abc"  # still a read stops at the mark
    assert sock.recv(100, peer.now) == b"!def"
    assert not sock.poll_mask() & POLLPRI


def test_a_pointer_into_data_not_yet_arrived_is_eagain_until_the_byte_comes() -> None:
    peer, sock = _open()
    _data(peer, b"abc", urg=5)  # the urgent byte is the fifth: in the next segment
    with pytest.raises(BlockingIOError):
        sock.recv_oob(1, peer.now)
    assert not sock.poll_mask() & POLLPRI
    assert sock.recv(100, peer.now) == b"abc"
    _data(peer, b"de", urg=2)  # the same mark again, as the sender repeats it until SND.UP
    assert sock.poll_mask() & POLLPRI and peer.host.stats["tcp.urg_recv"] == 1
    assert sock.recv(100, peer.now) == b"d"
    assert sock.recv_oob(1, peer.now) == b"e"


def test_a_newer_pointer_replaces_the_mark_and_the_older_byte_goes_inline() -> None:
    peer, sock = _open()
    _data(peer, b"ab", urg=2)
    _data(peer, b"cd", urg=2)
    assert sock.recv_oob(1, peer.now) == b"d"
    assert sock.recv(100, peer.now) == b"abc"
    assert peer.host.stats["tcp.urg_recv"] == 2 and peer.host.stats["tcp.urg_replaced"] == 1


def test_a_newer_pointer_drops_an_older_byte_that_is_next_to_read() -> None:
    peer, sock = _open()
    _data(peer, b"ab", urg=2)
    assert sock.recv(100, peer.now) == b"a"
    _data(peer, b"cd", urg=2)
    assert sock.recv(100, peer.now) == b"c"
    assert sock.recv_oob(1, peer.now) == b"d"


def test_a_pointer_for_data_already_received_is_ignored() -> None:
    peer, sock = _open()
    start = peer.seq
    _data(peer, b"abc", urg=3)
    # Overlapping retransmissions, with the same mark and an older one: both for data received.
    peer.send(ACK | URG, seq=start + 1, data=b"bcd", urg=2)
    peer.send(ACK | URG, seq=start, data=b"abcde", urg=1)
    peer.seq = start + 5
    assert peer.host.stats["tcp.urg_recv"] == 1 and peer.host.stats["tcp.urg_old"] == 2
    assert sock.recv_oob(1, peer.now) == b"c"
    assert sock.recv(100, peer.now) == b"ab" and sock.recv(100, peer.now) == b"de"


def test_a_pointer_far_beyond_the_window_only_waits_for_its_data() -> None:
    peer, sock = _open()
    _data(peer, b"abc", urg=0xFFFF)
    with pytest.raises(BlockingIOError):
        sock.recv_oob(1, peer.now)
    assert not sock.poll_mask() & POLLPRI
    assert sock.recv(100, peer.now) == b"abc"
    _data(peer, b"xyz")
    assert sock.recv(100, peer.now) == b"xyz"
    assert peer.tcb is not None and peer.tcb.state_name == "ESTABLISHED"


def test_a_zero_pointer_marks_the_segments_first_sequence_number_as_linux_takes_it() -> None:
    peer, sock = _open()
    peer.send(ACK | URG, urg=0)  # no data: the next byte to come is the urgent one
    _data(peer, b"xyz")
    assert sock.recv_oob(1, peer.now) == b"x" and sock.recv(100, peer.now) == b"yz"


@pytest.mark.parametrize("end", [FIN, RST])
def test_once_the_byte_cannot_come_msg_oob_reads_eof(end: int) -> None:
    peer, sock = _open()
    _data(peer, b"abc", urg=5)
    peer.send(ACK | end)
    peer.seq += 1
    if end == FIN:
        assert sock.recv(100, peer.now) == b"abc"
    assert sock.recv_oob(1, peer.now) == b""


# -- sending ------------------------------------------------------------------------------------------

def _urgent(seg: TcpSegment) -> int | None:
    return seg.urg if seg.flags & URG else None


def test_msg_oob_points_past_the_last_byte_until_it_is_acknowledged() -> None:
    peer, sock = _open()
    sock.send(b"ab", peer.now)
    sock.send(b"c!", peer.now, oob=True)  # Nagle would hold it; urgent data never waits
    first, second = data_segments(peer.out())
    assert (_urgent(first), bytes(second.payload), _urgent(second)) == (None, b"c!", 2)
    sock.send(b"x", peer.now)
    assert [_urgent(s) for s in data_segments(peer.out())] == [None]  # from SND.UP on: no URG
    peer.advance(1.5)  # the retransmission timeout resends from SND.UNA: now before SND.UP
    resent = data_segments(peer.out())
    assert bytes(resent[0].payload).startswith(b"ab") and _urgent(resent[0]) == 4
    peer.send(ACK)
    sock.send(b"y", peer.now)
    (seg,) = data_segments(peer.out())
    assert _urgent(seg) is None and peer.host.stats["tcp.urg_sent"] == 1


def test_a_closed_window_still_carries_the_urgent_pointer_on_acks() -> None:
    peer, sock = _open()
    peer.send(ACK, window=0)
    sock.send(b"abc", peer.now, oob=True)
    assert not data_segments(peer.out())
    peer.send(ACK | PSH, data=b"x", window=0)
    (ack,) = peer.out()
    assert not ack.payload and _urgent(ack) == 3  # RFC 9293 §3.8.5: urgent news despite the window


def test_a_pointer_beyond_the_field_reads_0xffff() -> None:
    peer, sock = _open()
    sock.sndbuf = 200_000
    assert sock.send(b"u" * 100_000, peer.now, oob=True) == 100_000
    segs = data_segments(peer.out())
    assert segs and all(_urgent(s) == 0xFFFF for s in segs)


def test_no_super_segments_while_urgent_and_every_pointer_is_its_segments_own() -> None:
    peer, sock = _open(tso=65535)
    sock.send(b"u" * 5000, peer.now, oob=True)
    segs = data_segments(peer.out())
    assert [len(s.payload) for s in segs] == [1460, 1460, 1460, 620]
    assert [_urgent(s) for s in segs] == [5000, 3540, 2080, 620]
    assert peer.host.stats["tcp.tx_gso"] == 0
    peer.send(ACK)
    sock.send(b"v" * 5000, peer.now)
    assert peer.host.stats["tcp.tx_gso"] == 1  # urgent mode over: super-segments again


# -- any pointers, any reads ------------------------------------------------------------------------

# One step of the property below: the peer's next chunk of ``size`` bytes (a retransmission from
# ``back`` bytes earlier when ``back``), with URG and ``urg`` when it is not None; or a read.
_STEP = st.one_of(
    st.tuples(st.just("data"), st.integers(1, 40), st.integers(0, 30),
              st.one_of(st.none(), st.integers(0, 45), st.integers(0, 0xFFFF))),
    st.tuples(st.just("recv"), st.integers(1, 50), st.booleans(), st.none()),
    st.tuples(st.just("oob"), st.integers(0, 2), st.booleans(), st.none()),
    st.tuples(st.just("oob"), st.just(1), st.just(False), st.none()))


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEP, max_size=60), st.booleans())
def test_any_pointers_and_reads_keep_the_stream_whole_but_for_urgent_bytes(steps: list[tuple[str, int, Any, Any]],
                                                                          inline: bool) -> None:
    peer, sock = _open()
    sock.oobinline = inline
    data = bytes(range(250))  # distinct bytes: each read byte says where it was in the stream
    start = peer.seq
    sent = 0
    marks: set[int] = set()  # every stream position a pointer named (BSD: the byte before it)
    stream = bytearray()
    oob: list[int] = []

    def read(count: int, peek: bool) -> None:
        with contextlib.suppress(BlockingIOError):
            got = sock.recv(count, peer.now, peek=peek)
            if not peek:
                stream.extend(got)

    for kind, a, b, urg in steps:
        if kind == "data":
            seq = max(0, sent - b)
            chunk = data[seq:seq + a]
            if not chunk:
                continue
            if urg is not None:
                marks.add(seq + urg - (1 if urg else 0))
            peer.send(ACK | PSH | (URG if urg is not None else 0), seq=start + seq, data=chunk, urg=urg or 0)
            sent = max(sent, seq + len(chunk))
        elif kind == "recv":
            read(a, b)
        else:
            try:
                oob.extend(sock.recv_oob(a, peer.now, peek=b))
            except BlockingIOError:
                pass
            except OSError as exc:
                assert exc.errno == errno.EINVAL
    peer.send(ACK | FIN, seq=start + sent)
    while len(got := sock.recv(1000, peer.now)):
        stream.extend(got)
    assert peer.tcb is not None and not peer.host.stats["stack.drop.internal_error"]
    if inline:
        assert bytes(stream) == data[:sent] and not oob
    else:
        assert list(stream) == sorted(stream)  # in order, nothing twice
        assert set(data[:sent]) - set(stream) <= marks  # only urgent bytes are missing
        assert set(oob) <= marks
        if not peer.host.stats["tcp.urg_replaced"]:  # (a replaced mark's byte goes inline, read or not)
            assert not set(oob) & set(stream)  # a byte read out of band is not in the stream too


# -- two stacks on a lossy link ---------------------------------------------------------------------

@pytest.mark.parametrize("sack", [True, False], ids=["sack", "newreno"])
@pytest.mark.parametrize("seed", range(6))
def test_the_urgent_byte_survives_loss_between_two_stacks(seed: int, sack: bool) -> None:
    """Bulk data with one MSG_OOB byte in the middle, sent once the line is idle (so it leaves alone
    and no other segment's first transmission carries the mark), 20% loss both ways: retransmissions
    before the mark carry URG too, so the reader, checking POLLPRI before each read as an application
    would, gets "!" out of band and everything else in order."""
    spec = f"loss=20%,seed={seed}"
    sim = Simulation(seed)
    options = {"net.ipv4.tcp_sack": int(sack)}
    a, ia = make_host(sim, "a", "020000000a01", IP_A, options)
    b, ib = make_host(sim, "b", "020000000b01", IP_B, options)
    sim.connect(a, ia, b, ib, ImpairSpec.parse(spec), ImpairSpec.parse(spec), latency=0.01)
    listener, client = b.socket(AF_INET, SOCK_STREAM), a.socket(AF_INET, SOCK_STREAM)
    assert isinstance(listener, TcpSocket) and isinstance(client, TcpSocket)
    listener.bind(("", 80))
    listener.listen(1)
    with contextlib.suppress(BlockingIOError):
        client.connect((IP_B, 80), sim.now)
    data = payload(f"urgent:{seed}", 150_000)
    parts = [data[:70_000], b"!", data[70_000:]]
    sent = [0, 0, 0]
    got, oob = bytearray(), bytearray()
    server: list[TcpSocket] = []

    def step() -> bool:
        now = sim.now
        if not server:
            with contextlib.suppress(BlockingIOError):
                server.append(listener.accept(now)[0])
            return False
        for i, part in enumerate(parts):
            tcb = client.tcb
            if i == 1 and not sent[1] and tcb is not None and tcb.snd_una < tcb.snd_max:
                break  # the urgent byte waits for an idle line
            while sent[i] < len(part) and client.state == "ESTABLISHED":
                try:
                    sent[i] += client.send(part[sent[i]:], now, oob=i == 1)
                except BlockingIOError:
                    break
            if sent[i] < len(part):
                break
        else:
            if client.state == "ESTABLISHED":
                client.shutdown(1, now)
        sock = server[0]
        with contextlib.suppress(BlockingIOError):
            while True:
                if sock.poll_mask() & POLLPRI:
                    oob.extend(sock.recv_oob(1, now))
                chunk = sock.recv(65536, now)
                if not chunk:
                    return True
                got.extend(chunk)
        return False

    assert sim.run_until(step, 3600)
    assert bytes(got) == data and bytes(oob) == b"!"
    assert a.stats["tcp.retransmit"] > 0 and a.stats["tcp.urg_sent"] == 1 and b.stats["tcp.urg_recv"] == 1
    assert not a.stats.get("stack.drop.internal_error") and not b.stats.get("stack.drop.internal_error")
