"""Receive buffer auto-tuning (tcp/rcvbuf.py, Linux's tcp_moderate_rcvbuf): the buffer, and so the
advertised window, grows while the application keeps up; SO_RCVBUF or the sysctl turn it off."""

from __future__ import annotations

import pytest

from pytcp_green.stack.wire.tcp import ACK

from .host import Peer
from .test_behaviour import establish

ROUND = 64 * 1448  # what the peer sends per round trip: half the default 128 KB buffer


def _bulk(peer: Peer, rounds: int) -> int:
    """The peer sends ROUND bytes a round trip, the application reads them all each time; returns
    the window (scaled) of the last ACK."""
    sock = peer.sock
    assert sock is not None
    window = 0
    for _ in range(rounds):
        for _ in range(ROUND // 1448):
            peer.send(ACK, data=b"x" * 1448)
            peer.seq += 1448
        assert len(sock.recv(1 << 24, peer.now)) == ROUND
        peer.advance(0.01)
        acks = peer.out()
        if acks:
            window = acks[-1].window << 7
    return window


@pytest.mark.parametrize("case", ["tuned", "so_rcvbuf", "sysctl_off"])
def test_the_buffer_grows_while_the_reader_keeps_up(case: str) -> None:
    peer = Peer({"net.ipv4.tcp_window_scaling": 1, "net.ipv4.tcp_moderate_rcvbuf": int(case != "sysctl_off")})
    establish(peer, wscale=7)
    assert peer.sock is not None
    if case == "so_rcvbuf":
        peer.sock.rcvbuf = 131072  # the application's choice: left alone
    window = _bulk(peer, 12)
    grown = peer.host.stats["tcp.rcvbuf_grow"]
    if case == "tuned":
        assert grown > 0 and peer.sock.rcvbuf > 131072 and window > 131072
        assert peer.sock.rcvbuf <= 6291456  # tcp_rmem[2]
    else:
        assert grown == 0 and peer.sock.rcvbuf == 131072 and window <= 131072
