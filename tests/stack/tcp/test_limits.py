"""Issue 11, the TCP limits, against a scripted peer in virtual time: a peer that shows a zero window and
goes silent cannot keep a connection (open or closed) for ever, one that keeps answering is probed for as
long as it answers (RFC 1122 §4.2.2.17), TCP_USER_TIMEOUT bounds the probing, orphans give up after
``tcp_orphan_retries`` (retransmissions too), and ``tcp_max_orphans``, ``tcp_max_tw_buckets`` and the
accept queue bound what a peer can make the stack hold, each counted and logged once."""

from __future__ import annotations

import contextlib
import errno
import logging

import pytest

from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.tcp import TcpSocket
from pytcp_green.stack.tcp.closing import ORPHAN_RETRIES_ALIVE
from pytcp_green.stack.tcp.tcb import Tcb
from pytcp_green.stack.wire.tcp import ACK, FIN, RST, SYN, TcpSegment, build_tcp

from .host import LOCAL, PEER_ISS, PORT, REMOTE, REMOTE_S, FakeHost, Peer, flags_of

M32 = 0xFFFFFFFF
DAY = 24 * 3600.0
RETRIES2 = 15  # net.ipv4.tcp_retries2's default
LAYER_LOG = "pytcp_green.stack.tcp.layer"
Timed = list[tuple[float, TcpSegment]]


def establish(peer: Peer, window: int) -> TcpSocket:
    peer.active_open()
    peer.out()
    peer.send(SYN | ACK, ack=peer.iss() + 1, window=window)
    peer.seq += 1
    peer.out()
    assert peer.state == "ESTABLISHED" and peer.sock is not None
    return peer.sock


def step(peer: Peer) -> bool:
    """Jump to the next timer deadline and run what is due; False when nothing is scheduled."""
    deadline = peer.host.timers.next_deadline()
    if deadline is None:
        return False
    peer.now = max(peer.now, deadline)
    peer.host.timers.run_due(peer.now)
    return True


def is_probe(seg: TcpSegment, una: int) -> bool:
    """A zero-window probe: no text, the sequence number just below SND.UNA (RFC 9293 §3.8.6.1)."""
    return flags_of(seg) == ACK and not seg.payload and seg.seq == (una - 1) & M32


def run(peer: Peer, seconds: float, *, answer: bool) -> tuple[int, Timed]:
    """Let ``seconds`` of virtual time pass; the peer answers each probe with a zero window if ``answer``,
    else stays silent.  Returns the number of probes and every other segment we sent, with its time."""
    tcb = peer.tcb
    assert tcb is not None
    una = tcb.snd_una
    end = peer.now + seconds
    probes = 0
    others: Timed = []
    timers = peer.host.timers
    while (deadline := timers.next_deadline()) is not None and deadline <= end:
        step(peer)
        for seg in peer.out():
            if is_probe(seg, una):
                probes += 1
                if answer and peer.tcb is not None:
                    peer.send(ACK, window=0)
            else:
                others.append((peer.now, seg))
    peer.now = end
    return probes, others


def zero_window(*, state: str, sysctl: dict[str, int | float | str] | None = None) -> Peer:
    """A connection whose peer advertised a zero window before we wrote 1000 bytes: ESTABLISHED (the
    application holds the socket), or an orphan in FIN-WAIT-1 or LAST-ACK after close()."""
    peer = Peer(sysctl)
    sock = establish(peer, window=0)
    if state == "LAST_ACK":
        peer.send(FIN | ACK, window=0)
        peer.seq += 1
        peer.out()
    assert sock.send(b"z" * 1000, peer.now) == 1000
    if state != "ESTABLISHED":
        sock.close(peer.now)
        assert peer.host.tcp.orphans == 1
    assert peer.out() == [] and peer.state == state  # nothing fits in the window, not even the FIN
    return peer


def assert_reset_and_freed(peer: Peer, others: Timed) -> None:
    assert [flags_of(seg) for _, seg in others] == [RST | ACK]
    assert peer.tcb is None and not peer.host.tcp.conns
    assert peer.host.tcp.orphans == 0 and peer.host.timers.next_deadline() is None
    assert peer.host.stats["tcp.abort_on_timeout"] == 1


# -- zero-window probing ------------------------------------------------------------------------------

def test_an_open_connection_to_a_silent_zero_window_peer_times_out_after_retries2_probes() -> None:
    peer = zero_window(state="ESTABLISHED")
    sock = peer.sock
    assert sock is not None
    probes, others = run(peer, DAY, answer=False)
    assert probes == RETRIES2 == peer.host.stats["tcp.window_probe"]
    assert_reset_and_freed(peer, others)
    assert sock.take_error() == errno.ETIMEDOUT


@pytest.mark.parametrize("state", ["FIN_WAIT_1", "LAST_ACK"])
@pytest.mark.parametrize("orphan_retries", [0, 3])
def test_a_closed_connection_to_a_silent_zero_window_peer_is_reset_after_orphan_retries(
        state: str, orphan_retries: int) -> None:
    """tcp_orphan_retries 0 reads as 8 while the connection is alive (Linux's tcp_orphan_retries())."""
    peer = zero_window(state=state, sysctl={"net.ipv4.tcp_orphan_retries": orphan_retries})
    probes, others = run(peer, DAY, answer=False)
    assert probes == (orphan_retries or ORPHAN_RETRIES_ALIVE)
    assert_reset_and_freed(peer, others)


def test_a_peer_that_keeps_answering_with_a_zero_window_is_probed_all_day() -> None:
    peer = zero_window(state="ESTABLISHED")
    probes, others = run(peer, DAY, answer=True)
    tcb = peer.tcb
    assert tcb is not None and peer.state == "ESTABLISHED" and others == []
    assert probes > 700 and tcb.probes_out == 0  # the last probe was answered too
    assert peer.host.stats["tcp.abort_on_timeout"] == 0
    peer.send(ACK, window=65535)  # the window opens at last: the data flows
    assert sum(len(s.payload) for s in peer.out()) == 1000


def test_an_orphan_is_reset_once_its_probe_interval_reaches_rto_max_even_if_the_peer_answers() -> None:
    """Linux's tcp_probe_timer: an orphan is no longer 'alive' when its backed-off probe interval reaches
    tcp_rto_max, and then tcp_orphan_retries (0) allows nothing more, answers or not."""
    peer = zero_window(state="FIN_WAIT_1")
    tcb = peer.tcb
    assert tcb is not None
    rto, rto_max = tcb.rto.rto, tcb.rto.rto_max
    alive = sum(1 for backoff in range(RETRIES2) if rto * (1 << backoff) < rto_max)
    probes, others = run(peer, DAY, answer=True)
    assert probes == alive == 10  # 0.2 s doubled nine times is 102.4 s, once more past 120 s
    assert_reset_and_freed(peer, others)


def test_user_timeout_bounds_zero_window_probing_even_while_the_peer_answers() -> None:
    """TCP_USER_TIMEOUT counts from the first probe; the last wait is cut short to end on time."""
    peer = zero_window(state="ESTABLISHED")
    sock = peer.sock
    assert sock is not None
    sock.user_timeout = 30.0
    while not peer.out():
        step(peer)
    first = peer.now
    peer.send(ACK, window=0)
    probes, others = run(peer, DAY, answer=True)
    assert probes + 1 == 7  # 0, 0.4, 1.2, 2.8, 6.0, 12.4, 25.2 s; the next would be at 50.8 s
    assert_reset_and_freed(peer, others)
    assert others[0][0] - first == pytest.approx(30.0)
    assert sock.take_error() == errno.ETIMEDOUT


# -- retransmission timeouts of an orphan ---------------------------------------------------------------

@pytest.mark.parametrize(("closed", "orphan_retries", "expected"),
                         [(False, 0, RETRIES2), (True, 0, ORPHAN_RETRIES_ALIVE), (True, 3, 3)],
                         ids=["open", "orphan", "orphan-3"])
def test_retransmissions_give_up_after_retries2_or_orphan_retries(closed: bool, orphan_retries: int,
                                                                  expected: int) -> None:
    """Linux's tcp_write_timeout: an orphan's limit is tcp_orphan_retries instead of tcp_retries2."""
    peer = Peer({"net.ipv4.tcp_orphan_retries": orphan_retries})
    sock = establish(peer, window=65535)
    sock.send(b"r" * 1000, peer.now)
    if closed:
        sock.close(peer.now)
    sent = peer.out()
    assert sum(len(s.payload) for s in sent) == 1000 and bool(sent[-1].flags & FIN) == closed
    peer.advance(DAY)
    *again, rst = peer.out()
    # After each timeout cwnd is one segment: the first one is resent, and never acknowledged.
    assert [(s.seq, len(s.payload)) for s in again] == [(sent[0].seq, len(sent[0].payload))] * expected
    assert peer.host.stats["tcp.rto"] == expected
    assert flags_of(rst) == RST | ACK and peer.tcb is None
    assert peer.host.stats["tcp.abort_on_timeout"] == 1
    if not closed:
        assert sock.take_error() == errno.ETIMEDOUT


# -- tcp_max_orphans and tcp_max_tw_buckets --------------------------------------------------------------

def connect(host: FakeHost, rport: int, now: float) -> TcpSocket:
    """An established connection from our port PORT + rport to the peer's port rport."""
    sock = host.tcp.socket(AF_INET)
    sock.bind(("", PORT + rport))
    with contextlib.suppress(BlockingIOError):
        sock.connect((REMOTE_S, rport), now)
    syn = TcpSegment.parse(memoryview(host.sent.pop()[2]))
    deliver(host, rport, PEER_ISS, syn.seq + 1, SYN | ACK, now)
    assert sock.state == "ESTABLISHED"
    return sock


def closed_connection(host: FakeHost, rport: int, now: float) -> tuple[TcpSocket, Tcb]:
    """:func:`connect`, then close(): our FIN is out (FIN-WAIT-1)."""
    sock = connect(host, rport, now)
    sock.close(now)
    tcb = sock.tcb
    assert tcb is not None and sock.state == "FIN_WAIT_1"
    return sock, tcb


def deliver(host: FakeHost, rport: int, seq: int, ack: int, flags: int, now: float) -> None:
    segment = build_tcp(REMOTE, LOCAL, rport, PORT + rport, seq & M32, ack & M32, flags, 65535)
    host.tcp.receive(REMOTE, LOCAL, memoryview(segment), now)


def sent_flags(host: FakeHost) -> list[int]:
    flags = [flags_of(TcpSegment.parse(memoryview(raw))) for _, _, raw in host.sent]
    host.sent.clear()
    return flags


def test_a_close_beyond_tcp_max_orphans_resets_at_once(caplog: pytest.LogCaptureFixture) -> None:
    host = FakeHost({"net.ipv4.tcp_max_orphans": 2})
    now = 100.0
    socks = [connect(host, 40000 + i, now) for i in range(4)]
    host.sent.clear()
    with caplog.at_level(logging.WARNING, logger=LAYER_LOG):
        for sock in socks:
            sock.close(now)
    # Each close sends its FIN; past the limit the RST follows at once (Linux's tcp_close).
    assert sent_flags(host) == [FIN | ACK, FIN | ACK, FIN | ACK, RST | ACK, FIN | ACK, RST | ACK]
    assert [s.state for s in socks] == ["FIN_WAIT_1", "FIN_WAIT_1", "CLOSED", "CLOSED"]
    assert host.tcp.orphans == 2 and len(host.tcp.conns) == 2
    assert host.stats["tcp.abort_on_memory"] == 2
    assert [r.getMessage() for r in caplog.records] == [
        "TCP: too many orphaned sockets (counted as tcp.abort_on_memory, logged once)"]
    # The orphans that stay finish as usual and leave the count: FIN-WAIT-2, then tcp_fin_timeout.
    for i in range(2):
        tcb = socks[i].tcb
        assert tcb is not None
        deliver(host, 40000 + i, PEER_ISS + 1, tcb.snd_max, ACK, now)
    assert [s.state for s in socks[:2]] == ["FIN_WAIT_2", "FIN_WAIT_2"] and host.tcp.orphans == 2
    host.timers.run_due(now + 60.0)
    assert host.tcp.orphans == 0 and not host.tcp.conns
    assert sent_flags(host) == [RST | ACK, RST | ACK]  # tcp_fin_timeout ends an orphan with a RST, as Linux


def test_a_connection_beyond_tcp_max_tw_buckets_skips_time_wait(caplog: pytest.LogCaptureFixture) -> None:
    host = FakeHost({"net.ipv4.tcp_max_tw_buckets": 1})
    now = 100.0
    socks = [connect(host, 41000 + i, now) for i in range(3)]
    with caplog.at_level(logging.WARNING, logger=LAYER_LOG):
        for i, sock in enumerate(socks):
            sock.close(now)
            tcb = sock.tcb
            assert tcb is not None
            deliver(host, 41000 + i, PEER_ISS + 1, tcb.snd_max, FIN | ACK, now)  # ACKs our FIN, sends its own
            assert (tcb.rcv_nxt & M32) == (PEER_ISS + 2) & M32
    host.sent.clear()
    assert [s.state for s in socks] == ["TIME_WAIT", "CLOSED", "CLOSED"]
    assert host.tcp.time_wait == 1 and list(host.tcp.conns.values()) == [socks[0].tcb]
    assert host.stats["tcp.time_wait_overflow"] == 2 and host.tcp.orphans == 0
    assert [r.getMessage() for r in caplog.records] == [
        "TCP: time wait bucket table overflow (counted as tcp.time_wait_overflow, logged once)"]
    # TIME-WAIT's end frees the bucket: the next connection to close waits there again.
    host.timers.run_due(now + 60.0)
    assert host.tcp.time_wait == 0 and not host.tcp.conns
    sock, tcb = closed_connection(host, 41010, now + 61)
    deliver(host, 41010, PEER_ISS + 1, tcb.snd_max, FIN | ACK, now + 61)
    assert sock.state == "TIME_WAIT" and host.tcp.time_wait == 1


def test_skipping_time_wait_still_acknowledges_the_peers_fin() -> None:
    host = FakeHost({"net.ipv4.tcp_max_tw_buckets": 0})
    sock, tcb = closed_connection(host, 42000, 100.0)
    host.sent.clear()
    deliver(host, 42000, PEER_ISS + 1, tcb.snd_max, FIN | ACK, 100.0)
    ((_, _, raw),) = host.sent
    ack = TcpSegment.parse(memoryview(raw))
    assert flags_of(ack) == ACK and ack.ack == (PEER_ISS + 2) & M32
    assert sock.state == "CLOSED" and not host.tcp.conns and host.stats["tcp.time_wait_overflow"] == 1


def test_simultaneous_close_beyond_tcp_max_tw_buckets_frees_the_connection() -> None:
    """CLOSING -> TIME-WAIT (our FIN acknowledged after the peer's crossed it) skips TIME-WAIT too."""
    host = FakeHost({"net.ipv4.tcp_max_tw_buckets": 0})
    sock, tcb = closed_connection(host, 42100, 100.0)
    deliver(host, 42100, PEER_ISS + 1, tcb.snd_max - 1, FIN | ACK, 100.0)  # the peer's FIN, ours unseen
    assert sock.state == "CLOSING"
    deliver(host, 42100, PEER_ISS + 2, tcb.snd_max, ACK, 100.0)
    assert sock.state == "CLOSED" and not host.tcp.conns and host.tcp.time_wait == 0
    assert host.stats["tcp.time_wait_overflow"] == 1


# -- the accept queue -----------------------------------------------------------------------------------

def syn_from(host: FakeHost, rport: int, now: float) -> TcpSegment:
    segment = build_tcp(REMOTE, LOCAL, rport, PORT, 1000, 0, SYN, 65535)
    host.tcp.receive(REMOTE, LOCAL, memoryview(segment), now)
    (synack,) = [TcpSegment.parse(memoryview(raw)) for _, _, raw in host.sent]
    host.sent.clear()
    assert flags_of(synack) == SYN | ACK
    return synack


def ack_from(host: FakeHost, rport: int, synack: TcpSegment, now: float) -> None:
    segment = build_tcp(REMOTE, LOCAL, rport, PORT, 1001, (synack.seq + 1) & M32, ACK, 65535)
    host.tcp.receive(REMOTE, LOCAL, memoryview(segment), now)


def test_the_accept_queue_is_bounded_by_somaxconn_and_a_final_ack_beyond_it_is_dropped(
        caplog: pytest.LogCaptureFixture) -> None:
    host = FakeHost({"net.core.somaxconn": 2})
    listener = host.tcp.socket(AF_INET)
    listener.bind(("", PORT))
    listener.listen(128)
    assert listener.backlog == 2
    now = 100.0
    # Four handshakes in flight at once (the SYN queue takes them); only two fit in the accept queue.
    synacks = {port: syn_from(host, port, now) for port in range(50001, 50005)}
    with caplog.at_level(logging.WARNING, logger=LAYER_LOG):
        for port, synack in synacks.items():
            ack_from(host, port, synack, now)
    assert len(listener.accept_queue) == 2 and listener.half_open == 2
    assert host.stats["tcp.drop.listen_overflow_ack"] == 2 and host.sent == []  # dropped: no RST, no ACK
    # A new SYN is dropped as well while the queue is full.
    host.tcp.receive(REMOTE, LOCAL, memoryview(build_tcp(REMOTE, LOCAL, 50009, PORT, 7, 0, SYN, 65535)), now)
    assert host.sent == [] and host.stats["tcp.drop.listen_overflow"] == 1
    assert [r.getMessage() for r in caplog.records] == [
        "TCP: accept queue of port 80 is full (backlog 2); dropping (counted as tcp.drop.listen_overflow_ack, "
        "logged once)",
        "TCP: accept queue of port 80 is full (backlog 2); dropping (counted as tcp.drop.listen_overflow, "
        "logged once)"]
    # The dropped children are still half-open: our SYN-ACK is retransmitted, and the peer's next ACK
    # completes the handshake once the application has made room.
    host.timers.run_due(now + 1.0)
    assert sorted(TcpSegment.parse(memoryview(raw)).dport for _, _, raw in host.sent) == [50003, 50004]
    host.sent.clear()
    accepted = [listener.accept(now + 1)[1][1] for _ in range(2)]
    assert accepted == [50001, 50002]
    for port in (50003, 50004):
        ack_from(host, port, synacks[port], now + 1)
    assert [listener.accept(now + 1)[1][1] for _ in range(2)] == [50003, 50004]
    assert listener.half_open == 0 and host.stats["tcp.drop.listen_overflow_ack"] == 2
