"""TCP toward a TSO device (issue 12): new data leaves in super-segments of whole segments under the
same windows, and the segments the device cuts from them are the ones a connection without TSO sends."""

from __future__ import annotations

from pytcp_green.stack.wire.ip4 import write_ip4
from pytcp_green.stack.wire.offload import segment_tcp
from pytcp_green.stack.wire.tcp import ACK, FIN, PSH, TcpSegment, sack_option, verify_checksum

from .host import LOCAL, REMOTE, Peer
from .test_behaviour import M32, data_segments, establish

TSO = 65535


def test_a_tso_route_sends_one_super_segment_per_window_of_whole_segments() -> None:
    peer = Peer(tso=TSO)
    establish(peer, window=65535)
    assert peer.sock is not None
    peer.sock.send(b"x" * 100_000, peer.now)
    assert peer.host.gso_sizes == [1460] and peer.host.stats["tcp.tx_gso"] == 1
    (seg,) = data_segments(peer.out())  # IW10: cwnd is 10 segments of 1460 bytes
    assert len(seg.payload) == 10 * 1460


def test_a_window_limited_super_segment_is_cut_to_whole_segments() -> None:
    peer = Peer(tso=TSO)
    establish(peer, window=5000)
    assert peer.sock is not None
    peer.sock.send(b"x" * 20_000, peer.now)
    # 5000 bytes of window: three whole segments leave; the 620 left over would be a silly window.
    assert [len(s.payload) for s in data_segments(peer.out())] == [3 * 1460]


def _wire_segments(peer: Peer) -> list[tuple[int, int, bytes]]:
    """(seq, flags, payload) of what the wire carries: super-segments cut as a device cuts them."""
    out: list[tuple[int, int, bytes]] = []
    for (src, dst, raw), gso in zip(peer.host.sent, peer.host.gso_sizes, strict=True):
        packet = bytearray(20) + raw
        write_ip4(packet, 0, src=src, dst=dst, proto=6, total_len=len(packet), ident=1, df=True)
        for piece in segment_tcp(packet, 0, gso) if gso else [packet]:
            tcp = memoryview(piece)[20:]
            assert verify_checksum(tcp, LOCAL, REMOTE)
            seg = TcpSegment.parse(tcp)
            if len(seg.payload) or seg.flags & FIN:
                out.append((seg.seq, seg.flags, bytes(seg.payload)))
    peer.host.sent.clear()
    peer.host.gso_sizes.clear()
    return out


def test_the_device_cuts_the_segments_a_connection_without_tso_sends() -> None:
    data = bytes(range(256)) * 80  # 20,480 bytes: more than IW10, ends in a short segment, then the FIN
    wires = []
    for tso in (0, TSO):
        peer = Peer(tso=tso)
        establish(peer, window=65535)
        assert peer.sock is not None
        assert peer.sock.send(data, peer.now) == len(data)
        peer.sock.close(peer.now)
        got = _wire_segments(peer)
        for _ in range(20):  # ACK everything sent until the FIN has gone
            if got and got[-1][1] & FIN:
                break
            peer.send(ACK, ack=peer.snd_nxt())
            got += _wire_segments(peer)
        wires.append(got)
    plain, cut = wires
    assert cut == plain
    assert b"".join(p for _, _, p in cut) == data
    assert all(not f & (PSH | FIN) for _, f, _ in cut[:-1]) and cut[-1][1] & FIN


def test_go_back_n_after_a_timeout_resends_in_super_segments() -> None:
    peer = Peer(tso=TSO)
    establish(peer, window=65535)
    assert peer.sock is not None and peer.tcb is not None
    peer.sock.send(b"x" * 14_600, peer.now)
    una = peer.snd_una()
    assert [len(s.payload) for s in data_segments(peer.out())] == [14_600]  # all lost
    peer.advance(peer.tcb.rto.rto + 0.01)
    (first,) = data_segments(peer.out())  # the loss window: one segment
    assert (first.seq, len(first.payload)) == (una & 0xFFFFFFFF, 1460)
    peer.send(ACK, ack=una + 1460)
    again = data_segments(peer.out())  # slow start again: two segments, resent as one super-segment
    assert [(s.seq, len(s.payload)) for s in again] == [((una + 1460) & 0xFFFFFFFF, 2 * 1460)]
    assert peer.host.stats["tcp.retransmit"] == 3  # wire segments, not super-segments


def test_sack_recovery_resends_a_lost_hole_in_super_segments() -> None:
    peer = Peer({"net.ipv4.tcp_sack": 1}, tso=TSO)
    establish(peer, sack=True, window=65535)
    assert peer.sock is not None
    peer.sock.send(b"x" * 14_600, peer.now)
    base = peer.snd_una()
    data_segments(peer.out())  # ten segments; the first four are lost, the peer SACKs the rest
    sacked = sack_option([((base + 4 * 1460) & M32, (base + 14_600) & M32)])
    peer.send(ACK, ack=base, options=sacked)
    first = data_segments(peer.out())  # fast retransmit, and PRR's one segment more
    assert [((s.seq - base) & M32, len(s.payload)) for s in first] == [(0, 1460), (1460, 1460)]
    peer.send(ACK, ack=base + 2 * 1460, options=sacked)  # both arrived: PRR allows the rest of the hole
    assert peer.host.gso_sizes == [1460]
    (rest,) = data_segments(peer.out())
    assert ((rest.seq - base) & M32, len(rest.payload)) == (2 * 1460, 2 * 1460)
    assert peer.host.stats["tcp.retransmit"] == 4  # wire segments, not super-segments
