"""Sender and receiver behaviour against a scripted peer: Nagle, delayed ACK, retransmission, recovery,
probing, keep-alive, timeouts, options, closing.  Each test states the rule it checks."""

from __future__ import annotations

import errno

import pytest

from pytcp_green.stack.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpSegment, sack_option, syn_options

from .host import LOCAL, PEER_PORT, PORT, REMOTE, Peer, flags_of

M32 = 0xFFFFFFFF


def establish(peer: Peer, *, mss: int = 1460, wscale: int | None = None, sack: bool = False,
              ts: bool = False, window: int = 65535) -> None:
    """Active open from our side, answered by a SYN-ACK carrying the given options."""
    peer.active_open()
    (syn,) = peer.out()
    opts = syn_options(mss, wscale, sack, (5000, syn.ts_val or 0) if ts else None)
    peer.send(SYN | ACK, ack=peer.iss() + 1, options=opts, window=window)
    peer.seq += 1
    peer.out()
    assert peer.state == "ESTABLISHED"


def data_segments(segs: list[TcpSegment]) -> list[TcpSegment]:
    return [s for s in segs if len(s.payload)]


# -- options and sizes ---------------------------------------------------------------------------------

def test_syn_offers_mss_from_the_path_mtu_and_enabled_options() -> None:
    peer = Peer({"net.ipv4.tcp_timestamps": 1, "net.ipv4.tcp_sack": 1, "net.ipv4.tcp_window_scaling": 1}, mtu=1400)
    peer.active_open()
    (syn,) = peer.out()
    assert flags_of(syn) == SYN and syn.mss == 1400 - 40 and syn.sack_perm and syn.ts_val is not None
    assert syn.wscale is not None and (65535 << syn.wscale) >= 6291456  # covers tcp_rmem max


def test_peer_mss_and_timestamps_give_a_full_segment_of_mss_minus_12() -> None:
    """A full segment is MSS minus the option bytes every segment carries (RFC 6691)."""
    peer = Peer({"net.ipv4.tcp_timestamps": 1})
    establish(peer, mss=1000, ts=True)
    assert peer.sock is not None
    peer.sock.send(b"x" * 5000, peer.now)
    segs = data_segments(peer.out())
    assert [len(s.payload) for s in segs] == [988] * 5 + [60]
    assert all(s.ts_val is not None for s in segs)


def test_window_scale_applies_only_when_both_sides_offer_it() -> None:
    peer = Peer({"net.ipv4.tcp_window_scaling": 1})
    establish(peer, wscale=3, window=1000)
    tcb = peer.tcb
    assert tcb is not None and tcb.snd_wscale == 3 and tcb.rcv_wscale == tcb.our_wscale
    peer.send(ACK, window=1000)
    assert tcb.snd_wnd == 8000
    other = Peer({"net.ipv4.tcp_window_scaling": 1})
    establish(other, wscale=None)
    assert other.tcb is not None and other.tcb.snd_wscale == 0 and other.tcb.rcv_wscale == 0


def test_icmp_fragmentation_needed_lowers_the_mss_and_resends_smaller() -> None:
    peer = Peer()
    establish(peer)
    assert peer.sock is not None and peer.tcb is not None
    peer.sock.send(b"y" * 3000, peer.now)
    first = data_segments(peer.out())
    assert len(first[0].payload) == 1460
    quoted = memoryview(bytes(first[0].sport.to_bytes(2, "big") + first[0].dport.to_bytes(2, "big")
                             + first[0].seq.to_bytes(4, "big")))
    peer.host.tcp.icmp_error(LOCAL, REMOTE, quoted, errno.EMSGSIZE, 1000, peer.now)
    again = data_segments(peer.out())
    assert again and all(len(s.payload) <= 960 for s in again) and again[0].seq == first[0].seq
    assert peer.host.stats["tcp.pmtu_update"] == 1


def test_icmp_port_unreachable_aborts_a_connection_attempt() -> None:
    peer = Peer()
    sock = peer.active_open()
    (syn,) = peer.out()
    quoted = memoryview(PORT.to_bytes(2, "big") + PEER_PORT.to_bytes(2, "big") + syn.seq.to_bytes(4, "big"))
    peer.host.tcp.icmp_error(LOCAL, REMOTE, quoted, errno.ECONNREFUSED, None, peer.now)
    assert peer.state == "CLOSED" and sock.take_error() == errno.ECONNREFUSED


def test_isn_follows_rfc6528() -> None:
    """ISN = 4 µs clock + keyed hash of the 4-tuple: same tuple later -> clock difference; other
    tuples -> unrelated values."""
    layer = Peer().host.tcp
    a = layer.isn(LOCAL, 1000, REMOTE, 80, 10.0)
    b = layer.isn(LOCAL, 1000, REMOTE, 80, 11.0)
    assert (b - a) & M32 == 250_000
    c = layer.isn(LOCAL, 1001, REMOTE, 80, 10.0)
    assert abs(((c - a) & M32) - 0) > 1_000_000 or c != a
    assert Peer().host.tcp.isn(LOCAL, 1000, REMOTE, 80, 10.0) == a  # same seed, same secret


# -- Nagle ---------------------------------------------------------------------------------------------

def test_nagle_holds_a_second_small_segment_until_the_first_is_acknowledged() -> None:
    peer = Peer()
    establish(peer)
    sock = peer.sock
    assert sock is not None
    sock.send(b"a" * 100, peer.now)
    sock.send(b"b" * 100, peer.now)
    assert [bytes(s.payload) for s in data_segments(peer.out())] == [b"a" * 100]
    peer.send(ACK, ack=peer.snd_una() + 100)
    assert [bytes(s.payload) for s in data_segments(peer.out())] == [b"b" * 100]


def test_nodelay_sends_small_segments_at_once() -> None:
    peer = Peer()
    establish(peer)
    sock = peer.sock
    assert sock is not None
    sock.nodelay = True
    sock.send(b"a" * 100, peer.now)
    sock.send(b"b" * 100, peer.now)
    assert len(data_segments(peer.out())) == 2


def test_full_segments_are_never_held_by_nagle() -> None:
    """With timestamps, a full segment is MSS-12 bytes; it goes out even behind an unacknowledged
    small segment (the PyTCP 3.0.9 bug this project was told about)."""
    peer = Peer({"net.ipv4.tcp_timestamps": 1})
    establish(peer, ts=True)
    sock = peer.sock
    assert sock is not None
    sock.send(b"h" * 50, peer.now)  # a small "header" write
    sock.send(b"B" * (1448 * 3 + 10), peer.now)  # the "body"
    sizes = [len(s.payload) for s in data_segments(peer.out())]
    assert sizes == [50, 1448, 1448, 1448]  # the 10-byte tail waits for the ACK of the small one
    peer.send(ACK, ack=peer.snd_nxt(), ts=(6000, 0))
    assert [len(s.payload) for s in data_segments(peer.out())] == [10]


def test_close_flushes_a_nagle_held_tail_with_the_fin() -> None:
    peer = Peer()
    establish(peer)
    sock = peer.sock
    assert sock is not None
    sock.send(b"a" * 10, peer.now)
    sock.send(b"b" * 10, peer.now)
    peer.out()
    sock.close(peer.now)
    (seg,) = peer.out()
    assert bytes(seg.payload) == b"b" * 10 and seg.flags & FIN


# -- receiver: delayed ACK, window updates -------------------------------------------------------------

def test_delayed_ack_after_quickack_start_and_every_second_full_segment() -> None:
    peer = Peer()
    establish(peer)
    for _ in range(16):  # quick-ACK phase at the start
        peer.send(ACK, data=b"q" * 1460)
        peer.seq += 1460
    assert len(peer.out()) == 16
    peer.send(ACK, data=b"d" * 1460)
    peer.seq += 1460
    assert peer.out() == []  # delayed
    peer.send(ACK, data=b"d" * 1460)
    peer.seq += 1460
    (ack,) = peer.out()  # the second full segment is acknowledged at once
    assert ack.ack == peer.seq & M32
    peer.send(ACK, data=b"e" * 100)
    peer.seq += 100
    assert peer.out() == []
    peer.advance(0.039)
    assert peer.out() == []
    peer.advance(0.002)
    (late,) = peer.out()
    assert late.ack == peer.seq & M32 and peer.host.stats["tcp.delayed_ack"] == 1


def test_out_of_order_data_is_acknowledged_at_once_with_sack_blocks() -> None:
    peer = Peer({"net.ipv4.tcp_sack": 1})
    establish(peer, sack=True)
    peer.send(ACK, seq=peer.seq + 1000, data=b"z" * 500)
    (ack,) = peer.out()
    assert ack.ack == peer.seq & M32 and ack.sack == [((peer.seq + 1000) & M32, (peer.seq + 1500) & M32)]
    peer.send(ACK, seq=peer.seq + 2000, data=b"w" * 100)
    (ack,) = peer.out()
    assert ack.sack is not None and ack.sack[0] == ((peer.seq + 2000) & M32, (peer.seq + 2100) & M32)
    assert len(ack.sack) == 2  # the most recent block first, the older one repeated (RFC 2018 §4)
    peer.send(ACK, data=b"a" * 1000)  # fills the first hole
    (ack,) = peer.out()
    assert ack.ack == (peer.seq + 1500) & M32 and ack.sack == [((peer.seq + 2000) & M32, (peer.seq + 2100) & M32)]
    assert peer.sock is not None and len(peer.sock.recv(5000, peer.now)) == 1500


def test_zero_window_is_advertised_and_a_read_reopens_it() -> None:
    peer = Peer()
    sock = peer.active_open()
    sock.rcvbuf = 4000  # before the SYN, so the first window already reflects it
    peer.out()
    peer.send(SYN | ACK, ack=peer.iss() + 1)
    peer.seq += 1
    peer.out()
    tcb = peer.tcb
    assert tcb is not None and tcb.rcv_adv - tcb.rcv_nxt == 4000
    total = 0
    while tcb.rcv_adv - tcb.rcv_nxt > 0:
        size = min(1000, tcb.rcv_adv - tcb.rcv_nxt)
        peer.send(ACK, data=b"x" * size)
        peer.seq += size
        total += size
    assert peer.out()[-1].window == 0
    peer.send(ACK, data=b"y" * 10)  # into a zero window: refused, acknowledged with the window
    (ack,) = peer.out()
    assert ack.window == 0 and ack.ack == peer.seq & M32
    assert len(sock.recv(10_000, peer.now)) == total == 4000
    (update,) = peer.out()  # window update after the application read
    assert update.window == 4000 and peer.host.stats["tcp.window_update"] == 1


def test_receiver_sws_avoidance_does_not_advertise_tiny_windows() -> None:
    peer = Peer()
    sock = peer.active_open()
    sock.rcvbuf = 4000
    peer.out()
    peer.send(SYN | ACK, ack=peer.iss() + 1)
    peer.seq += 1
    peer.send(ACK, data=b"x" * 4000)
    peer.seq += 4000
    peer.out()
    sock.recv(100, peer.now)  # 100 bytes free: less than min(rcvbuf/2, MSS)
    assert peer.out() == []
    peer.send(ACK, seq=peer.seq - 1)  # provoke an ACK: it must still say 0
    (ack,) = peer.out()
    assert ack.window == 0
    sock.recv(2000, peer.now)
    (update,) = peer.out()
    assert update.window == 2100


# -- sender: windows, probes, retransmission ------------------------------------------------------------

def test_zero_window_probes_back_off_and_data_flows_when_it_opens() -> None:
    peer = Peer()
    establish(peer, window=0)
    sock = peer.sock
    assert sock is not None
    sock.send(b"p" * 3000, peer.now)
    assert peer.out() == []
    times = []
    for _ in range(4):
        before = peer.now
        while not peer.out():
            peer.advance(0.05)
        times.append(peer.now - before)
    assert times[1] > times[0] * 1.5 and times[2] > times[1] * 1.5  # exponential backoff
    assert peer.host.stats["tcp.window_probe"] == 4
    peer.send(ACK, window=65535)
    assert sum(len(s.payload) for s in data_segments(peer.out())) == 3000


def test_persist_probe_uses_an_old_sequence_number() -> None:
    peer = Peer()
    establish(peer, window=0)
    assert peer.sock is not None and peer.tcb is not None
    peer.sock.send(b"p", peer.now)
    peer.advance(peer.tcb.rto.rto + 0.01)  # RTO is the floor (0.2 s): the SYN's RTT sample was 0
    (probe,) = peer.out()
    assert len(probe.payload) == 0 and probe.seq == (peer.snd_una() - 1) & M32


def test_rto_starts_at_one_second_and_doubles() -> None:
    peer = Peer()
    peer.active_open()
    peer.out()
    peer.send(SYN | ACK, ack=peer.iss() + 1)
    peer.seq += 1
    peer.out()
    assert peer.sock is not None and peer.tcb is not None
    peer.tcb.rto.srtt = None
    peer.tcb.rto.base = 1.0
    peer.sock.send(b"r" * 100, peer.now)
    peer.out()
    stamps = []
    start = peer.now
    while len(stamps) < 3:
        peer.advance(0.01)
        if data_segments(peer.out()):
            stamps.append(round(peer.now - start, 2))
    assert stamps == pytest.approx([1.0, 3.0, 7.0], abs=0.02)
    assert peer.host.stats["tcp.rto"] == 3


def test_syn_retries_then_etimedout() -> None:
    peer = Peer({"net.ipv4.tcp_syn_retries": 3})
    sock = peer.active_open()
    peer.advance(100)
    syns = [s for s in peer.out() if flags_of(s) == SYN]
    assert len(syns) == 4  # the first and 3 retries (1 + 2 + 4 s, then 8 s to give up)
    assert peer.state == "CLOSED" and sock.take_error() == errno.ETIMEDOUT


def test_three_duplicate_acks_trigger_fast_retransmit_newreno() -> None:
    peer = Peer()
    establish(peer)
    sock = peer.sock
    assert sock is not None
    sock.send(b"f" * (1460 * 8), peer.now)
    segs = data_segments(peer.out())
    first = segs[0].seq
    for _ in range(3):
        peer.send(ACK, ack=first)
    again = data_segments(peer.out())
    assert again and again[0].seq == first and peer.host.stats["tcp.fast_retransmit"] == 1
    # a partial ACK retransmits the next hole at once (RFC 6582)
    peer.send(ACK, ack=first + 1460)
    assert any(s.seq == (first + 1460) & M32 for s in data_segments(peer.out()))


def test_limited_transmit_sends_new_data_on_the_first_two_duplicate_acks() -> None:
    peer = Peer()
    establish(peer, window=1460 * 4)
    sock = peer.sock
    assert sock is not None
    sock.send(b"l" * (1460 * 10), peer.now)
    assert len(data_segments(peer.out())) == 4  # receiver window full
    peer.send(ACK, ack=peer.snd_una(), window=1460 * 8)  # window update, not a duplicate
    more = data_segments(peer.out())
    assert len(more) == 4
    una = peer.snd_una()
    peer.send(ACK, ack=una, window=1460 * 8)
    peer.send(ACK, ack=una, window=1460 * 8)
    assert peer.host.stats["tcp.fast_retransmit"] == 0


def test_sack_recovery_retransmits_only_the_holes() -> None:
    peer = Peer({"net.ipv4.tcp_sack": 1})
    establish(peer, sack=True)
    sock = peer.sock
    assert sock is not None
    sock.send(b"s" * (1460 * 10), peer.now)
    segs = data_segments(peer.out())
    base = segs[0].seq
    # Segments 0 and 3 are lost: SACK 1-2 and 4-9.
    # The first ACK SACKs two segments: not yet more than (DupThresh - 1) * SMSS above the hole.
    peer.send(ACK, ack=base, options=sack_option([(base + 1460, base + 1460 * 3)]))
    assert peer.host.stats["tcp.fast_retransmit"] == 0
    peer.send(ACK, ack=base, options=sack_option([(base + 1460 * 4, base + 1460 * 10),
                                                  (base + 1460, base + 1460 * 3)]))
    resent = sorted({(s.seq - base) & M32 for s in data_segments(peer.out())})
    assert resent == [0, 1460 * 3]
    assert peer.host.stats["tcp.fast_retransmit"] == 1


def test_rto_after_sack_recovery_fails_goes_back_to_the_first_hole() -> None:
    peer = Peer({"net.ipv4.tcp_sack": 1, "net.ipv4.tcp_recovery": 0})  # no tail loss probe before the RTO
    establish(peer, sack=True)
    sock = peer.sock
    assert sock is not None
    sock.send(b"s" * (1460 * 4), peer.now)
    base = data_segments(peer.out())[0].seq
    assert peer.tcb is not None
    peer.advance(peer.tcb.rto.rto + 0.01)
    assert [(s.seq - base) & M32 for s in data_segments(peer.out())] == [0]  # cwnd = 1 segment



@pytest.mark.parametrize("rack", [1, 0], ids=["rack", "rfc6675-only"])
def test_lost_fast_retransmission_is_sent_again_without_a_timeout(rack: int) -> None:
    """RFC 8985 §6 (ordering form): once the peer SACKs data first sent after a retransmission, a
    retransmission still missing was lost and goes again in the same recovery; RFC 6675 alone waits
    for the RTO."""
    peer = Peer({"net.ipv4.tcp_sack": 1, "net.ipv4.tcp_recovery": rack})
    establish(peer, sack=True)
    sock = peer.sock
    assert sock is not None
    sock.send(b"r" * (1460 * 30), peer.now)
    segs = data_segments(peer.out())
    assert len(segs) == 10  # the initial window
    base = segs[0].seq
    stats = peer.host.stats

    def sack_up_to(segments: int) -> list[TcpSegment]:
        peer.send(ACK, ack=base, options=sack_option([(base + 1460, base + 1460 * segments)]))
        return data_segments(peer.out())

    # Segment 0 is lost; three SACKs start recovery with its fast retransmission.
    sack_up_to(2)
    sack_up_to(3)
    assert [s.seq for s in sack_up_to(4)] == [base]
    assert stats["tcp.fast_retransmit"] == 1
    # The retransmission is lost too.  The rest of the flight (including what limited transmit sent)
    # arrives and frees room for new data.
    new = sack_up_to(12)
    assert new and all((s.seq - base) & M32 >= 1460 * 12 for s in new)
    assert stats["tcp.lost_retransmit"] == 0
    # The first segment sent after the retransmission is SACKed.
    again = sack_up_to(((new[0].seq - base) & M32) // 1460 + 1)
    if rack:
        assert again and again[0].seq == base  # segment 0 goes a third time, no timeout needed
        assert stats["tcp.lost_retransmit"] == 1
    else:
        assert all(s.seq != base for s in again)  # segment 0 waits for the RTO
        assert not stats["tcp.lost_retransmit"]
    assert stats["tcp.rto"] == 0


def test_tail_loss_probe_repairs_a_tail_loss_before_the_rto() -> None:
    """RFC 8985 §7: the last two segments of a flight are lost.  After PTO = max(2 * SRTT, 10 ms) the
    highest segment goes again as a probe; its SACK shows the hole below it lost, and fast recovery
    repairs that without waiting for the RTO."""
    peer = Peer({"net.ipv4.tcp_sack": 1})
    establish(peer, sack=True)
    sock = peer.sock
    assert sock is not None and peer.tcb is not None
    sock.send(b"t" * (1460 * 4), peer.now)
    segs = data_segments(peer.out())
    assert len(segs) == 4
    base = segs[0].seq
    peer.send(ACK, ack=base + 1460 * 2)  # segments 2 and 3 are lost
    assert not peer.out()
    rto = peer.tcb.rto.rto
    peer.advance(rto / 2)
    (probe,) = data_segments(peer.out())
    assert probe.seq == (base + 1460 * 3) & M32
    stats = peer.host.stats
    assert stats["tcp.tlp"] == 1 and stats["tcp.rto"] == 0
    # The probe arrives and is SACKed: segment 2, sent before it, is retransmitted at once.
    peer.send(ACK, ack=base + 1460 * 2, options=sack_option([(base + 1460 * 3, base + 1460 * 4)]))
    assert [s.seq for s in data_segments(peer.out())] == [(base + 1460 * 2) & M32]
    assert stats["tcp.fast_retransmit"] == 1
    peer.send(ACK, ack=base + 1460 * 4)
    peer.advance(5.0)
    assert not data_segments(peer.out())
    assert stats["tcp.rto"] == 0 and stats["tcp.tlp"] == 1
    assert peer.snd_una() == peer.snd_nxt()


def test_tail_loss_probe_sends_new_data_when_the_window_allows() -> None:
    """RFC 8985 §7.3: with unsent data the peer's window admits, the probe is new data (cwnd aside)."""
    peer = Peer({"net.ipv4.tcp_sack": 1})
    establish(peer, sack=True)
    sock = peer.sock
    assert sock is not None and peer.tcb is not None
    sock.send(b"n" * (1460 * 12), peer.now)
    segs = data_segments(peer.out())
    assert len(segs) == 10  # cwnd-limited; two segments wait
    peer.advance(peer.tcb.rto.rto / 2)
    (probe,) = data_segments(peer.out())
    assert probe.seq == (segs[0].seq + 1460 * 10) & M32
    assert peer.host.stats["tcp.tlp"] == 1
    peer.advance(peer.tcb.rto.rto / 4)
    assert not data_segments(peer.out())  # one probe per episode

# -- timestamps ----------------------------------------------------------------------------------------

def test_paws_drops_an_old_timestamp_with_an_ack() -> None:
    peer = Peer({"net.ipv4.tcp_timestamps": 1})
    establish(peer, ts=True)
    peer.send(ACK, data=b"new", ts=(6000, 0))
    peer.seq += 3
    peer.out()
    peer.send(ACK, data=b"old", ts=(5999, 0))
    (ack,) = peer.out()
    assert ack.ack == peer.seq & M32 and peer.host.stats["tcp.drop.paws"] == 1
    assert peer.sock is not None and peer.sock.recv(100, peer.now) == b"new"


def test_ts_recent_is_echoed() -> None:
    peer = Peer({"net.ipv4.tcp_timestamps": 1})
    establish(peer, ts=True)
    peer.send(ACK | PSH, data=b"x", ts=(777_777, 0))
    (ack,) = peer.out()
    assert ack.ts_ecr == 777_777


# -- keep-alive and user timeout ------------------------------------------------------------------------

def test_keepalive_probes_then_gives_up_with_rst_and_etimedout() -> None:
    peer = Peer()
    establish(peer)
    sock = peer.sock
    assert sock is not None
    sock.keepidle, sock.keepintvl, sock.keepcnt = 10.0, 2.0, 3
    sock.keepalive = True
    peer.advance(9.9)
    assert peer.out() == []
    peer.advance(0.2)
    (probe,) = peer.out()
    assert probe.seq == (peer.snd_una() - 1) & M32 and len(probe.payload) == 0
    peer.send(ACK)  # answered: the idle clock restarts
    peer.advance(9.0)
    assert peer.out() == []
    peer.advance(30)
    out = peer.out()
    assert [flags_of(s) for s in out] == [ACK, ACK, ACK, RST | ACK]
    assert peer.state == "CLOSED" and sock.take_error() == errno.ETIMEDOUT


def test_user_timeout_aborts_unacknowledged_data() -> None:
    peer = Peer()
    establish(peer)
    sock = peer.sock
    assert sock is not None
    sock.user_timeout = 5.0
    sock.send(b"u" * 100, peer.now)
    peer.advance(4.0)
    assert peer.state == "ESTABLISHED"
    peer.advance(10.0)
    assert peer.state == "CLOSED" and sock.take_error() == errno.ETIMEDOUT
    assert any(flags_of(s) == RST | ACK for s in peer.out())


# -- closing ---------------------------------------------------------------------------------------------

def test_close_with_unread_data_sends_rst() -> None:
    peer = Peer()
    establish(peer)
    peer.send(ACK, data=b"unread")
    peer.seq += 6
    peer.out()
    assert peer.sock is not None
    peer.sock.close(peer.now)
    (rst,) = peer.out()
    assert flags_of(rst) == RST | ACK and peer.state == "CLOSED"
    assert peer.host.stats["tcp.abort_on_close"] == 1


def test_close_never_loses_queued_data() -> None:
    """close() right after send(): the orphan keeps sending through a tiny window until the FIN."""
    peer = Peer()
    establish(peer, window=500)
    sock = peer.sock
    assert sock is not None and peer.tcb is not None
    sock.nodelay = True
    payload = bytes(range(256)) * 40
    assert sock.send(payload, peer.now) == len(payload)
    sock.close(peer.now)
    expected = (peer.tcb.iss + 1) & M32
    got = bytearray()
    fin = False
    for _ in range(500):
        for seg in peer.out():
            if seg.seq == expected and len(seg.payload):
                got += seg.payload
                expected = (expected + len(seg.payload)) & M32
            if seg.flags & FIN and (seg.seq + len(seg.payload)) & M32 == expected:
                fin = True
                expected = (expected + 1) & M32
        if peer.tcb is None:
            break
        peer.send(ACK, ack=expected, window=500)
        peer.advance(0.3)
    assert bytes(got) == payload and fin and peer.state == "CLOSED"


def test_listen_backlog_drops_syns_when_the_accept_queue_is_full() -> None:
    peer = Peer()
    listener = peer.listen()
    listener.listen(1)
    peer.host.tcp.receive(REMOTE, LOCAL, memoryview(bytes(SYN_FROM(40001))), peer.now)
    (synack,) = peer.out()
    peer.host.tcp.receive(REMOTE, LOCAL, memoryview(bytes(ACK_FROM(40001, synack.seq + 1))), peer.now)
    assert len(listener.accept_queue) == 1
    peer.host.tcp.receive(REMOTE, LOCAL, memoryview(bytes(SYN_FROM(40002))), peer.now)
    assert peer.out() == [] and peer.host.stats["tcp.drop.listen_overflow"] == 1  # like Linux: dropped
    child, addr = listener.accept(peer.now)
    assert addr == ("198.18.0.2", 40001) and child.state == "ESTABLISHED"
    with pytest.raises(BlockingIOError):
        listener.accept(peer.now)
    peer.host.tcp.receive(REMOTE, LOCAL, memoryview(bytes(SYN_FROM(40002))), peer.now)
    assert [flags_of(s) for s in peer.out()] == [SYN | ACK]  # room again


def SYN_FROM(port: int) -> bytearray:
    from pytcp_green.stack.wire.tcp import build_tcp
    return build_tcp(REMOTE, LOCAL, port, PORT, 1000, 0, SYN, 65535)


def ACK_FROM(port: int, ack: int) -> bytearray:
    from pytcp_green.stack.wire.tcp import build_tcp
    return build_tcp(REMOTE, LOCAL, port, PORT, 1001, ack & M32, ACK, 65535)
