"""ECN (RFC 3168 §6.1) at one connection, the test playing the peer: negotiation per
``net.ipv4.tcp_ecn``, ECT(0) only on new data, CE answered with ECE until CWR, one reduction per window
by RFC 8511's beta_ecn = 0.8 and CWR on the next new data segment."""

from __future__ import annotations

import pytest

from pytcp_green.stack.tcp.cc.base import BETA_ECN
from pytcp_green.stack.tcp.cc.cubic import Cubic
from pytcp_green.stack.tcp.cc.reno import Reno
from pytcp_green.stack.tcp.ecn import CE, ECT0, NOT_ECT
from pytcp_green.stack.wire.checksum import Buffer
from pytcp_green.stack.wire.tcp import ACK, CWR, ECE, SYN, TcpSegment, build_tcp

from .host import LOCAL, PEER_PORT, PORT, REMOTE, Peer
from .scenario import Scenario, run
from .test_behaviour import data_segments

MSS = 1460


def _flags(seg: TcpSegment) -> int:
    return seg.flags


class EcnPeer(Peer):
    """A :class:`Peer` that sees the TOS of every segment we send and can mark its own segments."""

    def __init__(self, ecn: int) -> None:
        super().__init__({"net.ipv4.tcp_ecn": ecn})
        self.tos: list[int] = []
        host = self.host
        plain = host.ip_output

        def ip_output(src: bytes, dst: bytes, proto: int, payload: Buffer, now: float, *, tos: int = 0,
                      gso_size: int = 0, room: int = 0) -> int:
            self.tos.append(tos)
            return plain(src, dst, proto, payload, now, tos=tos, gso_size=gso_size, room=room)

        host.ip_output = ip_output  # type: ignore[method-assign]

    def marked(self, flags: int, data: bytes = b"", ecn: int = CE, ack: int | None = None) -> None:
        """One segment from the peer whose IP header carried ``ecn`` (acknowledging all we sent)."""
        ack = self.snd_nxt() if ack is None else ack
        segment = build_tcp(REMOTE, LOCAL, PEER_PORT, PORT, self.seq & 0xFFFFFFFF, ack, flags,
                            self.window, payload=data)
        self.host.tcp.receive(REMOTE, LOCAL, memoryview(segment), self.now, ecn=ecn)
        self.seq += len(data)

    def sent(self) -> list[tuple[TcpSegment, int]]:
        tos, self.tos = self.tos, []
        return list(zip(self.out(), tos, strict=True))


def ecn_established(peer: EcnPeer, synack_flags: int = SYN | ACK | ECE) -> TcpSegment:
    peer.active_open()
    ((syn, _),) = peer.sent()
    peer.send(synack_flags, ack=peer.iss() + 1)
    peer.seq += 1
    peer.sent()
    assert peer.state == "ESTABLISHED"
    return syn


@pytest.mark.parametrize(("mode", "requests"), [(0, False), (1, True), (2, False)])
def test_active_open_requests_ecn_only_with_tcp_ecn_1(mode: int, requests: bool) -> None:
    """§6.1.1: an ECN-setup SYN has ECE and CWR; tcp_ecn=2 (Linux's default) only accepts."""
    peer = EcnPeer(mode)
    syn = ecn_established(peer)
    assert _flags(syn) == (SYN | ECE | CWR if requests else SYN)
    tcb = peer.tcb
    assert tcb is not None and tcb.ecn.ok is requests
    assert peer.host.stats["tcp.ecn_negotiated"] == (1 if requests else 0)


def test_a_syn_ack_with_both_ece_and_cwr_is_not_ecn_setup() -> None:
    """§6.1.1: only ECE without CWR in the SYN-ACK agrees (both set is a reflecting middlebox)."""
    peer = EcnPeer(1)
    ecn_established(peer, SYN | ACK | ECE | CWR)
    tcb = peer.tcb
    assert tcb is not None and not tcb.ecn.ok


@pytest.mark.parametrize(("mode", "agrees"), [(0, False), (1, True), (2, True)])
def test_passive_open_answers_an_ecn_setup_syn_with_ece(mode: int, agrees: bool) -> None:
    peer = EcnPeer(mode)
    peer.listen()
    peer.send(SYN | ECE | CWR, ack=0)
    ((synack, tos),) = peer.sent()
    assert _flags(synack) == (SYN | ACK | ECE if agrees else SYN | ACK)
    assert tos == NOT_ECT  # never ECT on a SYN-ACK (§6.1.1)


def test_a_plain_syn_gets_no_ece() -> None:
    peer = EcnPeer(2)
    peer.listen()
    peer.send(SYN, ack=0)
    ((synack, _),) = peer.sent()
    assert _flags(synack) == SYN | ACK


def test_ect0_only_on_new_data_not_on_acks_or_retransmissions() -> None:
    """§6.1.4 no ECT on pure ACKs, §6.1.5 none on retransmissions."""
    peer = EcnPeer(1)
    ecn_established(peer)
    assert peer.sock is not None
    peer.sock.send(b"d" * 3000, peer.now)
    first = peer.sent()
    assert [tos for seg, tos in first if seg.payload] == [ECT0] * 6  # 536-byte segments (no MSS option)
    peer.marked(ACK, b"x", ecn=NOT_ECT, ack=peer.snd_una())  # the peer's data, acknowledging none of ours
    peer.advance(0.5)
    acks = [(seg, tos) for seg, tos in peer.sent() if not seg.payload]
    assert acks and all(tos == NOT_ECT for _, tos in acks)
    peer.advance(2.0)  # the retransmission timeout resends
    again = [(seg, tos) for seg, tos in peer.sent() if seg.payload]
    assert again and all(tos == NOT_ECT for _, tos in again)


def test_ce_is_echoed_at_once_and_on_every_ack_until_cwr() -> None:
    """§6.1.3: ECE on every ACK from the CE mark until a segment with CWR; a CE on that very segment
    starts a new series."""
    peer = EcnPeer(1)
    ecn_established(peer)
    stats = peer.host.stats
    peer.marked(ACK, b"a" * 100)
    ((ack, _),) = peer.sent()  # at once: the first mark of a series is not delayed
    assert _flags(ack) & ECE
    peer.marked(ACK, b"b" * 100, ecn=ECT0)
    peer.advance(0.5)
    assert all(_flags(seg) & ECE for seg, _ in peer.sent())
    peer.marked(ACK | CWR, b"c" * 100, ecn=ECT0)
    peer.advance(0.5)
    assert [_flags(seg) & ECE for seg, _ in peer.sent()] == [0]
    peer.marked(ACK | CWR, b"d" * 100, ecn=CE)
    assert _flags(peer.sent()[0][0]) & ECE
    assert stats["tcp.ecn_ce_recv"] == 2 and stats["tcp.ecn_cwr_recv"] == 1


def test_ece_reduces_once_per_window_by_beta_ecn_then_cwr_on_new_data() -> None:
    """§6.1.2: one reduction per window (RFC 8511 §3: cwnd = ssthresh = 0.8 FlightSize); CWR on the
    next new data segment only."""
    peer = EcnPeer(1)
    ecn_established(peer)
    tcb = peer.tcb
    sock = peer.sock
    assert tcb is not None and sock is not None
    mss = tcb.eff_mss
    sock.send(b"z" * 10 * mss, peer.now)
    segs = data_segments(peer.out())
    assert len(segs) == 10
    flight = tcb.snd_max - tcb.snd_una - mss
    peer.send(ACK | ECE, ack=segs[0].seq + mss)
    assert tcb.cc.cwnd == tcb.cc.ssthresh == int(flight * BETA_ECN)
    reduced = tcb.cc.cwnd
    assert not data_segments(peer.out())  # the window is now below the flight
    peer.send(ACK | ECE, ack=segs[1].seq + mss)  # same window: no second reduction
    assert tcb.cc.ssthresh == reduced
    stats = peer.host.stats
    assert stats["tcp.ecn_ece_recv"] == 2 and stats["tcp.ecn_cwnd_reduced"] == 1
    peer.send(ACK, ack=segs[-1].seq + mss)  # everything acknowledged: the window opens
    sock.send(b"n" * 3 * mss, peer.now)
    new = data_segments(peer.out())
    assert new and _flags(new[0]) & CWR and not any(_flags(s) & CWR for s in new[1:])
    assert stats["tcp.ecn_cwr_sent"] == 1


def test_without_ecn_an_ece_is_ignored() -> None:
    peer = EcnPeer(2)
    ecn_established(peer, SYN | ACK)
    tcb = peer.tcb
    assert tcb is not None and peer.sock is not None
    peer.sock.send(b"z" * 4 * tcb.eff_mss, peer.now)
    segs = data_segments(peer.out())
    cwnd = tcb.cc.cwnd
    peer.send(ACK | ECE, ack=segs[0].seq + tcb.eff_mss)
    assert tcb.cc.cwnd >= cwnd and peer.host.stats["tcp.ecn_cwnd_reduced"] == 0


@pytest.mark.parametrize("module", [Reno, Cubic])
def test_abe_beta_is_0_8_for_both_modules(module: type[Reno] | type[Cubic]) -> None:
    """RFC 8511 §3: ssthresh = max(FlightSize * 0.8, 2 SMSS), cwnd = ssthresh."""
    cc = module(MSS)
    cc.cwnd = 50 * MSS
    cc.on_ecn(50 * MSS, MSS, 1.0)
    assert cc.cwnd == cc.ssthresh == int(50 * MSS * 0.8)
    cc.on_ecn(MSS, MSS, 2.0)
    assert cc.cwnd == cc.ssthresh == 2 * MSS


# -- two stacks in the simulator, through the shim's CE marks (virtual time, seeded) ---------------------

@pytest.mark.parametrize("ecn", [1, 0])
def test_two_stacks_through_ce_marks_react_without_losing_anything(ecn: int) -> None:
    """With ECN the marks replace losses: both senders slow down (ECE, CWR) and nothing is resent;
    without it the shim has nothing ECN-capable to mark."""
    spec = "ecn=5%,seed=5"
    s = Scenario(seed=20_000, spec_ab=spec, spec_ba=spec, a_sends=300_000, b_sends=300_000,
                 sysctl_a={"net.ipv4.tcp_ecn": ecn}, shutdown_a=True)
    outcome = run(s)
    assert outcome.completed and outcome.intact, outcome.describe()
    marked = outcome.link["ab"]["ce_marked"] + outcome.link["ba"]["ce_marked"]
    if not ecn:
        assert marked == 0, outcome.describe()
        return
    assert outcome.link["ab"]["ce_marked"] > 0 and outcome.link["ba"]["ce_marked"] > 0, outcome.describe()
    for stats in (outcome.stats_a, outcome.stats_b):
        assert stats["tcp.ecn_negotiated"] == 1, outcome.describe()
        assert stats["tcp.ecn_ce_recv"] > 0 and stats["tcp.ecn_ece_sent"] > 0, outcome.describe()
        assert stats["tcp.ecn_cwnd_reduced"] > 0 and stats["tcp.ecn_cwr_sent"] > 0, outcome.describe()
        assert stats["tcp.ecn_cwr_recv"] > 0, outcome.describe()
        assert not stats.get("tcp.retransmit"), outcome.describe()
