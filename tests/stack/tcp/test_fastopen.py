"""TCP Fast Open's rules (RFC 7413) that a well-behaved kernel peer never exercises, with the test
playing the peer segment by segment: a wrong cookie, the listener's qlen, a SYN-ACK that leaves the
SYN's data unacknowledged, a lost SYN, and the option's codec against scapy.  The exchanges with the
kernel are tests/kernel/test_fastopen.py."""

from __future__ import annotations

import pytest
from scapy.layers.inet import TCP

from pytcp_green.stack.tcp.fastopen import OPTION_SPACE
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.tcp import ACK, SYN, TcpSegment, build_tcp, fastopen_option

from .host import LOCAL, PEER_ISS, PEER_PORT, REMOTE, REMOTE_S, Peer, flags_of

DATA = bytes(range(200))


def _server(qlen: int = 4) -> Peer:
    peer = Peer({"net.ipv4.tcp_fastopen": 3})
    peer.listen().fastopen_qlen = qlen
    return peer


def _syn(peer: Peer, cookie: bytes, port: int = PEER_PORT) -> list[TcpSegment]:
    segment = build_tcp(REMOTE, LOCAL, port, 80, PEER_ISS, 0, SYN, 65535,
                        options=fastopen_option(cookie), payload=DATA)
    peer.host.tcp.receive(REMOTE, LOCAL, memoryview(segment), peer.now)
    return peer.out()


def test_a_wrong_cookie_leaves_the_data_unacknowledged_and_brings_the_right_one() -> None:
    peer = _server()
    right = peer.host.tcp.fastopen.cookie(REMOTE, LOCAL)
    (synack,) = _syn(peer, bytes(8))
    assert flags_of(synack) == SYN | ACK and synack.ack == (PEER_ISS + 1) & 0xFFFFFFFF
    assert synack.fastopen == right
    assert peer.host.stats["tcp.tfo_passive_fail"] == 1 and not peer.listener.accept_queue  # type: ignore[union-attr]


def test_a_valid_cookie_makes_a_child_accepted_with_the_syns_data_at_once() -> None:
    peer = _server()
    (synack,) = _syn(peer, peer.host.tcp.fastopen.cookie(REMOTE, LOCAL))
    assert synack.ack == (PEER_ISS + 1 + len(DATA)) & 0xFFFFFFFF and synack.fastopen is None
    child = peer.accept()
    assert child.state == "SYN_RECEIVED" and child.recv(1000, peer.now) == DATA
    assert peer.host.stats["tcp.tfo_passive"] == 1


def test_beyond_the_qlen_a_valid_cookie_gets_an_ordinary_handshake() -> None:
    peer = _server(qlen=1)
    cookie = peer.host.tcp.fastopen.cookie(REMOTE, LOCAL)
    _syn(peer, cookie, port=40001)
    (synack,) = _syn(peer, cookie, port=40002)
    assert synack.ack == (PEER_ISS + 1) & 0xFFFFFFFF and synack.fastopen is None  # Linux sends no cookie
    assert peer.host.stats["tcp.tfo_listen_overflow"] == 1 and peer.host.stats["tcp.tfo_passive"] == 1


def test_without_the_server_bit_the_option_is_ignored() -> None:
    peer = Peer({"net.ipv4.tcp_fastopen": 1})
    peer.listen().fastopen_qlen = 4
    (synack,) = _syn(peer, peer.host.tcp.fastopen.cookie(REMOTE, LOCAL))
    assert synack.ack == (PEER_ISS + 1) & 0xFFFFFFFF and synack.fastopen is None


def test_0x400_makes_every_listener_fast_open_and_0x200_takes_data_without_a_cookie() -> None:
    peer = Peer({"net.ipv4.tcp_fastopen": 0x2 | 0x200 | 0x400})
    peer.listen()  # no TCP_FASTOPEN: 0x400 stands in for it
    segment = build_tcp(REMOTE, LOCAL, PEER_PORT, 80, PEER_ISS, 0, SYN, 65535, payload=DATA)  # no option
    peer.host.tcp.receive(REMOTE, LOCAL, memoryview(segment), peer.now)
    (synack,) = peer.out()
    assert synack.ack == (PEER_ISS + 1 + len(DATA)) & 0xFFFFFFFF
    assert peer.accept().recv(1000, peer.now) == DATA


def _client(cookie: bytes = b"\x11" * 8) -> tuple[Peer, TcpSegment]:
    peer = Peer()
    peer.host.tcp.fastopen.remember(REMOTE, cookie, 1460)
    sock = peer.host.tcp.socket(2)
    sock.bind(("", 80))
    peer.sock = sock
    assert sock.sendto_fastopen(DATA * 10, (REMOTE_S, PEER_PORT), peer.now) == len(DATA) * 10
    (syn,) = peer.out()
    return peer, syn


def test_the_syn_carries_the_cached_cookie_and_one_segment_of_data() -> None:
    _peer, syn = _client()
    assert flags_of(syn) == SYN and syn.fastopen == b"\x11" * 8
    assert bytes(syn.payload) == (DATA * 10)[:1460 - OPTION_SPACE]


def test_syn_data_the_synack_did_not_acknowledge_is_sent_again_at_once() -> None:
    peer, syn = _client()
    peer.send(SYN | ACK, ack=syn.seq + 1, options=fastopen_option(b"\x22" * 8))
    out = peer.out()
    assert b"".join(bytes(s.payload) for s in out) == DATA * 10
    assert out[0].seq == (syn.seq + 1) & 0xFFFFFFFF
    assert peer.host.stats["tcp.tfo_active_fail"] == 1 and peer.host.stats["tcp.tfo_active"] == 0
    assert peer.host.tcp.fastopen.cache[REMOTE][0] == b"\x22" * 8  # the fresh cookie replaces the old


def test_a_retransmitted_syn_carries_neither_data_nor_cookie() -> None:
    peer, syn = _client()
    peer.advance(1.0)
    (again,) = peer.out()
    assert flags_of(again) == SYN and not again.payload and again.fastopen is None
    peer.send(SYN | ACK, ack=syn.seq + 1)
    first = next(s for s in peer.out() if s.payload)  # cwnd is one segment after a lost SYN (RFC 5681 §3.1)
    assert first.seq == (syn.seq + 1) & 0xFFFFFFFF and (DATA * 10).startswith(bytes(first.payload))
    assert peer.host.stats["tcp.tfo_syn_retransmit"] == 1


@pytest.mark.parametrize("cookie", [b"", b"\x01\x02\x03\x04", bytes(range(16))])
def test_the_option_codec_matches_scapy(cookie: bytes) -> None:
    raw = build_tcp(REMOTE, LOCAL, 1, 2, 3, 0, SYN, 1000, options=fastopen_option(cookie))
    assert TcpSegment.parse(memoryview(raw)).fastopen == cookie
    assert [o for o in TCP(raw).options if o[0] != "NOP"] == [("TFO", cookie)]
    assert len(raw) % 4 == 0
    if cookie:  # scapy's own encoding parses to the same cookie
        built = bytes(TCP(sport=1, dport=2, flags="S", options=[("TFO", cookie)]))
        assert TcpSegment.parse(memoryview(built)).fastopen == cookie


@pytest.mark.parametrize("length", [3, 4, 5, 20])
def test_a_cookie_of_a_wrong_length_is_malformed(length: int) -> None:
    opt = bytes((34, length)) + bytes(length - 2)
    raw = build_tcp(REMOTE, LOCAL, 1, 2, 3, 0, SYN | ACK, 1000, options=opt + bytes(-len(opt) % 4))
    with pytest.raises(Malformed):
        TcpSegment.parse(memoryview(raw))
